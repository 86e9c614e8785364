//! GGUF reader and dequantization: files built here byte by byte (valid and
//! corrupted), the golden vectors of `tests/golden/dequant_vectors.json` (made by
//! gguf-py, see scripts/reference/smollm2_reference.py), and the real SmolLM2 file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_model::gguf::{dequantize, GgmlType, GgufFile, MetadataArray, MetadataValue};
use sdft_model::Error;
use serde_json::Value;

/// `$SDFT_HOME/<rel>`, or `None` after a note saying how to get it.
fn asset(rel: &str) -> Option<PathBuf> {
    sdft_model::assets::cached(rel)
}

// ---------------------------------------------------------------- GGUF writer

/// A tensor for [`Gguf`]; `offset` overrides the computed data offset.
#[derive(Clone)]
struct T {
    name: String,
    ne: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
    offset: Option<u64>,
}

fn t(name: &str, ne: &[u64], type_id: u32, data: Vec<u8>) -> T {
    T {
        name: name.into(),
        ne: ne.to_vec(),
        type_id,
        data,
        offset: None,
    }
}

/// A GGUF file under construction; `kv` holds encoded key/value pairs.
#[derive(Clone)]
struct Gguf {
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<T>,
    alignment: u64,
    n_tensors_override: Option<u64>,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Gguf {
    fn new() -> Self {
        Gguf {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            tensors: Vec::new(),
            alignment: 32,
            n_tensors_override: None,
        }
    }

    /// Adds a pair whose value (type id `vtype`) is already encoded.
    fn kv(mut self, key: &str, vtype: u32, value: &[u8]) -> Self {
        gstr(&mut self.kv, key);
        self.kv.extend(vtype.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    fn kv_str(self, key: &str, s: &str) -> Self {
        let mut v = Vec::new();
        gstr(&mut v, s);
        self.kv(key, 8, &v)
    }

    fn tensor(mut self, t: T) -> Self {
        self.tensors.push(t);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let align = |n: u64| n.div_ceil(self.alignment) * self.alignment;
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        let n_tensors = self.n_tensors_override.unwrap_or(self.tensors.len() as u64);
        out.extend(n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut offsets = Vec::new();
        let mut next = 0u64;
        for t in &self.tensors {
            let off = t.offset.unwrap_or(next);
            offsets.push(off);
            next = align(off + t.data.len() as u64);
            gstr(&mut out, &t.name);
            out.extend((t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(off.to_le_bytes());
        }
        out.resize(align(out.len() as u64) as usize, 0);
        let data_start = out.len();
        for (t, off) in self.tensors.iter().zip(offsets) {
            if t.data.is_empty() {
                continue;
            }
            let at = data_start + off as usize;
            if out.len() < at + t.data.len() {
                out.resize(at + t.data.len(), 0);
            }
            out[at..at + t.data.len()].copy_from_slice(&t.data);
        }
        out
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A file with every metadata value type and two tensors (F32 [2, 3] and a
/// 2-block Q8_0 [32, 2]).
fn sample(version: u32) -> Gguf {
    let mut arr_u32 = 4u32.to_le_bytes().to_vec();
    arr_u32.extend(3u64.to_le_bytes());
    for x in [10u32, 20, 30] {
        arr_u32.extend(x.to_le_bytes());
    }
    let mut arr_str = 8u32.to_le_bytes().to_vec();
    arr_str.extend(2u64.to_le_bytes());
    gstr(&mut arr_str, "hello");
    gstr(&mut arr_str, "▁wörld");
    // array<array<i8>>: [[1, -2], []]
    let mut nested = 9u32.to_le_bytes().to_vec();
    nested.extend(2u64.to_le_bytes());
    nested.extend(1u32.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    nested.extend([1u8, (-2i8) as u8]);
    nested.extend(1u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());

    let mut q8 = Vec::new();
    for b in 0..2 {
        q8.extend(half::f16::from_f32(0.25 * (b + 1) as f32).to_le_bytes());
        q8.extend((0..32).map(|i| (i as i8 - 16) as u8));
    }
    let mut g = Gguf::new()
        .kv_str("general.architecture", "llama")
        .kv("t.u8", 0, &[200])
        .kv("t.i8", 1, &[(-5i8) as u8])
        .kv("t.u16", 2, &60000u16.to_le_bytes())
        .kv("t.i16", 3, &(-300i16).to_le_bytes())
        .kv("t.u32", 4, &4_000_000_000u32.to_le_bytes())
        .kv("t.i32", 5, &(-7i32).to_le_bytes())
        .kv("t.f32", 6, &1.5f32.to_le_bytes())
        .kv("t.bool", 7, &[1])
        .kv("t.u64", 10, &(1u64 << 40).to_le_bytes())
        .kv("t.i64", 11, &(-(1i64 << 40)).to_le_bytes())
        .kv("t.f64", 12, &0.125f64.to_le_bytes())
        .kv("t.arr_u32", 9, &arr_u32)
        .kv("t.arr_str", 9, &arr_str)
        .kv("t.nested", 9, &nested)
        .tensor(t("w.f32", &[3, 2], 0, f32_bytes(&[1., 2., 3., 4., 5., 6.])))
        .tensor(t("w.q8", &[32, 2], 8, q8));
    g.version = version;
    g
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, Error> {
    let dir = tempfile::tempdir().unwrap();
    GgufFile::open(write(dir.path(), "x.gguf", bytes))
}

fn open_err(bytes: &[u8]) -> String {
    match open_bytes(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error `{msg}` should mention `{p}`");
    }
}

// ---------------------------------------------------------------- valid files

#[test]
fn reads_metadata_and_tensors_v2_and_v3() {
    for version in [2, 3] {
        let f = open_bytes(&sample(version).bytes()).unwrap();
        assert_eq!(f.version(), version);
        assert_eq!(f.alignment(), 32);
        assert_eq!(f.data_offset() % 32, 0);
        let md = f.metadata();
        assert_eq!(md.len(), 15);
        assert_eq!(f.architecture().unwrap(), Some("llama"));
        assert_eq!(md.get_u32("t.u8").unwrap(), Some(200));
        assert_eq!(md.get_i64("t.i8").unwrap(), Some(-5));
        assert_eq!(md.get_u32("t.u16").unwrap(), Some(60000));
        assert_eq!(md.get_i64("t.i16").unwrap(), Some(-300));
        assert_eq!(md.require_u32("t.u32").unwrap(), 4_000_000_000);
        assert_eq!(md.get_i64("t.i32").unwrap(), Some(-7));
        assert_eq!(md.get_f32("t.f32").unwrap(), Some(1.5));
        assert_eq!(md.get_bool("t.bool").unwrap(), Some(true));
        assert_eq!(md.get_u64("t.u64").unwrap(), Some(1 << 40));
        assert!(md.get_u32("t.u64").is_err(), "2^40 does not fit u32");
        assert_eq!(md.get_i64("t.i64").unwrap(), Some(-(1 << 40)));
        assert_eq!(md.get_f64("t.f64").unwrap(), Some(0.125));
        assert_eq!(
            md.get("t.arr_u32"),
            Some(&MetadataValue::Array(MetadataArray::U32(vec![10, 20, 30])))
        );
        assert_eq!(
            md.get_int_array("t.arr_u32").unwrap(),
            Some(vec![10, 20, 30])
        );
        assert_eq!(
            md.get_str_array("t.arr_str").unwrap().unwrap(),
            ["hello", "▁wörld"]
        );
        assert_eq!(
            md.get_array("t.nested").unwrap().unwrap(),
            &MetadataArray::Array(vec![
                MetadataArray::I8(vec![1, -2]),
                MetadataArray::I8(vec![])
            ])
        );
        let err = md.get_str("t.u8").unwrap_err().to_string();
        assert_contains(&err, &["x.gguf", "t.u8", "expected string, found u8"]);

        let names: Vec<_> = f.tensors().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["w.f32", "w.q8"]);
        let w = f.tensor("w.f32").unwrap();
        assert_eq!(
            (w.ne(), w.shape(), w.dtype()),
            (&[3u64, 2][..], vec![2, 3], GgmlType::F32)
        );
        let (shape, v) = f.tensor_f32("w.f32").unwrap();
        assert_eq!(shape, [2, 3]);
        assert_eq!(v, [1., 2., 3., 4., 5., 6.]);
        assert_eq!(f.tensor_bytes("w.f32").unwrap(), f32_bytes(&v));

        let (shape, v) = f.tensor_f32("w.q8").unwrap();
        assert_eq!(shape, [2, 32]);
        assert_eq!(v[0], -16.0 * 0.25);
        assert_eq!(v[32 + 31], 15.0 * 0.5);
        assert_eq!(f.tensor_bytes("w.q8").unwrap().len(), 68);
        assert_eq!(f.tensor("w.q8").unwrap().offset() % 32, 0);
    }
}

#[test]
fn custom_alignment_and_no_tensors() {
    let mut g = sample(3).kv("general.alignment", 4, &64u32.to_le_bytes());
    g.alignment = 64;
    let f = open_bytes(&g.bytes()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensor_f32("w.f32").unwrap().1[5], 6.0);

    let mut g = sample(3);
    g.tensors.clear();
    let f = open_bytes(&g.bytes()).unwrap();
    assert!(f.tensors().is_empty());
}

#[test]
fn zero_sized_tensor_shares_an_offset() {
    let mut g = sample(3);
    g.tensors.insert(0, t("w.empty", &[0, 5], 0, vec![]));
    let f = open_bytes(&g.bytes()).unwrap();
    assert_eq!(
        f.tensor("w.empty").unwrap().offset(),
        f.tensor("w.f32").unwrap().offset()
    );
    assert_eq!(f.tensor_f32("w.empty").unwrap(), (vec![5, 0], vec![]));
    assert_eq!(f.tensor_f32("w.f32").unwrap().1[0], 1.0);
}

#[test]
fn missing_and_undequantizable_tensors() {
    let g = sample(3).tensor(t("w.q5_1", &[32], 7, vec![0; 24]));
    let f = open_bytes(&g.bytes()).unwrap();
    assert!(matches!(
        f.tensor_f32("nope"),
        Err(Error::MissingTensor { .. })
    ));
    let e = f.tensor_f32("w.q5_1").unwrap_err();
    assert!(matches!(e, Error::UnsupportedType { .. }), "{e}");
    assert_contains(&e.to_string(), &["w.q5_1", "Q5_1", "Q4_K"]);
    assert_eq!(f.tensor_bytes("w.q5_1").unwrap().len(), 24);
}

// ---------------------------------------------------------------- corrupt files

#[test]
fn wrong_magic_and_versions() {
    let mut b = sample(3).bytes();
    b[..4].copy_from_slice(b"GGML");
    assert_contains(&open_err(&b), &["x.gguf", "not a GGUF file", "GGML"]);
    for (v, msg) in [
        (1u32, "unsupported GGUF version 1"),
        (4, "version 4"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut b = sample(3).bytes();
        b[4..8].copy_from_slice(&v.to_le_bytes());
        assert_contains(&open_err(&b), &[msg]);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let full = sample(3).bytes();
    let dir = tempfile::tempdir().unwrap();
    for len in 0..full.len() {
        let p = write(dir.path(), &format!("cut{len}.gguf"), &full[..len]);
        let e = GgufFile::open(&p).expect_err(&format!("truncated to {len} bytes"));
        let msg = e.to_string();
        assert!(
            msg.contains("truncated") || msg.contains("end of the file") || msg.contains("remain"),
            "len {len}: {msg}"
        );
    }
}

#[test]
fn lying_counts_fail_before_allocating() {
    let huge = 1u64 << 60;
    // tensor count
    let mut g = sample(3);
    g.n_tensors_override = Some(huge);
    assert_contains(
        &open_err(&g.bytes()),
        &["claims 1152921504606846976 tensor infos"],
    );
    // metadata count (bytes 16..24)
    let mut b = sample(3).bytes();
    b[16..24].copy_from_slice(&huge.to_le_bytes());
    assert_contains(&open_err(&b), &["metadata key/value pairs"]);
    // array length
    let mut arr = 6u32.to_le_bytes().to_vec();
    arr.extend(huge.to_le_bytes());
    let g = Gguf::new().kv("big.array", 9, &arr);
    assert_contains(&open_err(&g.bytes()), &["big.array", "claims"]);
    // string length
    let mut s = huge.to_le_bytes().to_vec();
    s.extend(b"abc");
    let g = Gguf::new().kv("big.string", 8, &s);
    assert_contains(&open_err(&g.bytes()), &["truncated", "big.string"]);
    // shape overflow
    let g = Gguf::new().tensor(t("w", &[1 << 40, 1 << 40], 0, vec![]));
    assert_contains(&open_err(&g.bytes()), &["`w`", "overflows"]);
}

#[test]
fn bad_tensor_infos() {
    // unknown type id
    let g = sample(3).tensor(t("w.bad", &[4], 77, vec![0; 16]));
    assert_contains(&open_err(&g.bytes()), &["w.bad", "unknown ggml type id 77"]);
    // row not a multiple of the block size
    let g = sample(3).tensor(t("w.q8odd", &[33], 8, vec![0; 34]));
    assert_contains(
        &open_err(&g.bytes()),
        &["w.q8odd", "not a multiple of the Q8_0 block size 32"],
    );
    // too many dims
    let g = sample(3).tensor(t("w.5d", &[1, 1, 1, 1, 1], 0, vec![0; 4]));
    assert_contains(&open_err(&g.bytes()), &["w.5d", "5 dimensions"]);
    // data beyond the end of the file
    let mut far = t("w.far", &[8], 0, vec![]);
    far.offset = Some(1 << 20);
    let g = sample(3).tensor(far);
    assert_contains(
        &open_err(&g.bytes()),
        &["w.far", "beyond the end of the file"],
    );
    // offset near u64::MAX must not overflow
    let mut wrap = t("w.wrap", &[8], 0, vec![]);
    wrap.offset = Some(u64::MAX - 31);
    assert_contains(
        &open_err(&sample(3).tensor(wrap).bytes()),
        &["w.wrap", "beyond"],
    );
    // misaligned
    let mut mis = t("w.mis", &[1], 0, vec![0; 4]);
    mis.offset = Some(500);
    assert_contains(
        &open_err(&sample(3).tensor(mis).bytes()),
        &["w.mis", "not a multiple of the alignment"],
    );
    // byte length overlapping the next tensor: w.f32 claims 64 elements but the
    // next tensor starts 32 bytes later
    let mut pad = t("w.pad", &[64], 0, vec![0; 256]);
    pad.offset = Some(512);
    let mut g = sample(3).tensor(pad);
    g.tensors[0].ne = vec![64];
    g.tensors[1].offset = Some(32);
    assert_contains(
        &open_err(&g.bytes()),
        &["w.f32", "byte length 256", "overlaps tensor `w.q8`"],
    );
    // duplicate names and keys
    let g = sample(3).tensor(t("w.f32", &[1], 0, vec![0; 4]));
    assert_contains(&open_err(&g.bytes()), &["w.f32", "duplicate tensor name"]);
    let g = sample(3).kv("t.u8", 0, &[1]);
    assert_contains(&open_err(&g.bytes()), &["duplicate metadata key `t.u8`"]);
    // alignment not a power of two, unknown value type
    let g = sample(3).kv("general.alignment", 4, &24u32.to_le_bytes());
    assert_contains(&open_err(&g.bytes()), &["general.alignment = 24"]);
    let g = Gguf::new().kv("t.weird", 13, &[0; 8]);
    assert_contains(&open_err(&g.bytes()), &["t.weird", "unknown value type 13"]);
}

#[test]
fn corrupted_header_bytes_never_panic() {
    let full = sample(3).bytes();
    let header_len = open_bytes(&full).unwrap().data_offset() as usize;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.gguf");
    for pos in 0..header_len {
        for val in [0x00u8, 0xFF, 0x80] {
            let mut b = full.clone();
            b[pos] = val;
            std::fs::write(&p, &b).unwrap();
            if let Ok(f) = GgufFile::open(&p) {
                for t in f.tensors() {
                    let _ = f.tensor_f32(t.name());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- golden vectors

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn golden() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dequant_vectors.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn expected_bits(case: &Value) -> Vec<u32> {
    case["values_f32_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u32::from_str_radix(b.as_str().unwrap(), 16).unwrap())
        .collect()
}

fn assert_bits(what: &str, got: &[f32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            *w,
            "{what}[{i}]: got {g}, want {}",
            f32::from_bits(*w)
        );
    }
}

#[test]
fn golden_dequant_vectors_bit_exact() {
    let g = golden();
    assert_eq!(g["format"], "sdft gguf dequant vectors v1");
    let cases = g["cases"].as_array().unwrap();
    let mut seen = Vec::new();
    let mut file = Gguf::new();
    for case in cases {
        let name = case["type"].as_str().unwrap();
        let dtype = GgmlType::from_id(case["ggml_type_id"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(dtype.name(), name);
        assert_eq!(
            dtype.block_size() as u64,
            case["block_size"].as_u64().unwrap()
        );
        assert_eq!(
            dtype.type_size() as u64,
            case["type_size"].as_u64().unwrap()
        );
        let raw = hex(case["raw_hex"].as_str().unwrap());
        let want = expected_bits(case);
        let mut out = vec![0f32; want.len()];
        dequantize(dtype, &raw, &mut out).unwrap();
        assert_bits(name, &out, &want);
        seen.push(name.to_string());
        file = file.tensor(t(
            &format!("g.{name}"),
            &[want.len() as u64],
            dtype.id(),
            raw,
        ));
    }
    for ty in [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(seen.iter().any(|s| s == ty), "no golden case for {ty}");
    }
    // The same blocks through the reader.
    let f = open_bytes(&file.bytes()).unwrap();
    for case in cases {
        let name = format!("g.{}", case["type"].as_str().unwrap());
        let (shape, v) = f.tensor_f32(&name).unwrap();
        assert_eq!(shape, [v.len()]);
        assert_bits(&name, &v, &expected_bits(case));
    }
}

// ---------------------------------------------------------------- SmolLM2

#[test]
fn smollm2_gguf() {
    let Some(path) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    let md = f.metadata();
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture().unwrap(), Some("llama"));
    assert_eq!(md.require_u32("llama.block_count").unwrap(), 30);
    assert_eq!(md.require_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(md.require_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(md.require_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(md.require_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        md.require_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(f.tensors().len(), 272);
    let emb = f.tensor_info("token_embd.weight").unwrap();
    assert_eq!(
        (emb.dtype(), emb.ne(), emb.shape()),
        (GgmlType::Q8_0, &[576u64, 49152][..], vec![49152, 576])
    );
    let down = f.tensor_info("blk.0.ffn_down.weight").unwrap();
    assert_eq!(
        (down.dtype(), down.shape()),
        (GgmlType::Q4_1, vec![576, 1536])
    );
    assert!(
        f.tensor("output.weight").is_none(),
        "SmolLM2 ties the output to token_embd"
    );

    for rt in golden()["real_tensors"].as_array().unwrap() {
        let name = rt["tensor"].as_str().unwrap();
        let info = f.tensor_info(name).unwrap();
        let ne: Vec<u64> = rt["ggml_shape_ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(info.ne(), ne, "{name}");
        assert_eq!(info.dtype().name(), rt["type"].as_str().unwrap());
        assert_eq!(
            f.data_offset() + info.offset(),
            rt["tensor_data_offset_in_file"].as_u64().unwrap()
        );
        let raw = hex(rt["raw_hex"].as_str().unwrap());
        let at = rt["row_byte_offset_in_tensor"].as_u64().unwrap() as usize;
        assert_eq!(
            &f.tensor_bytes(name).unwrap()[at..at + raw.len()],
            &raw[..],
            "{name} bytes"
        );
        let (shape, v) = f.tensor_f32(name).unwrap();
        assert_eq!(shape, info.shape());
        let start = rt["row"].as_u64().unwrap() as usize * rt["row_len"].as_u64().unwrap() as usize;
        let want = expected_bits(rt);
        assert_bits(name, &v[start..start + want.len()], &want);
    }

    // Dequantize everything; report the speed.
    let t0 = Instant::now();
    let (mut n, mut bytes) = (0usize, 0usize);
    for info in f.tensors() {
        let (_, v) = f.tensor_f32(info.name()).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{}", info.name());
        n += v.len();
        bytes += info.n_bytes() as usize;
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "dequantized {n} values ({:.1} MB stored) in {s:.3} s: {:.0} M values/s",
        bytes as f64 / 1e6,
        n as f64 / s / 1e6
    );
}
