#!/usr/bin/env python3
"""Independent NumPy reference for Qwen2.5-Coder-0.5B-Instruct (Qwen2) read straight from GGUF.

Shares no code with the Rust crates. It uses:

  * ``gguf`` (gguf-py) to parse the file and dequantize (``gguf.quants.dequantize``),
  * ``numpy`` for the forward pass (float32 weights as gguf-py dequantizes them,
    float64 activations, full causal attention, no cache),
  * a byte-level BPE tokenizer written here in plain Python (``regex`` for the
    Qwen2 pre-tokenizer split, GPT-2 byte->unicode map, merges by rank), checked
    against Hugging Face ``tokenizers`` configured as Qwen2's tokenizer.json.

Qwen2 is Llama plus a bias on the q, k and v projections; llama.cpp's converter
does not permute q/k rows for Qwen2 (its Qwen2 uses NEOX, i.e. rotate-half, RoPE),
so rotate-half RoPE runs on the GGUF rows as they are. This file's output head
(``output.weight``, Q8_0) is untied from ``token_embd.weight`` (Q5_0).

Writes to crates/sdft-model/tests/golden/ (formats in scripts/reference/README.md):

  qwen2_logits.json     top-10 logits and logsumexp at every position of 4 prompts,
                        and the greedy ChatML continuation
  qwen2_dequant.json    real tensor slices of the file (Q5_0, Q8_0, Q6_K, Q4_K, F32)
                        as raw bytes and gguf-py's f32 bit patterns
  qwen2_tokenize.json   token ids of code, Chinese, digit runs, whitespace runs and
                        special tokens

Run from the repository root:
  /work/wt/qwen2-venv/bin/python scripts/reference/qwen2_reference.py [--model PATH] [--only ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import regex

import gguf
from gguf import GGUFReader, GGMLQuantizationType
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

DEFAULT_MODEL = Path.home() / ".cache/sdft/models/Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "crates/sdft-model/tests/golden"
TOP_K = 10
GREEDY_MAX = 24

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
CHATML = (
    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
PROMPTS = [
    ("short_plain", "The capital of France is"),
    ("chatml_capital", CHATML),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n"),
    ("chinese", "北京是中华人民共和国的首都，也是全国的政治和文化中心。"),
]

TOKENIZE_CASES = [
    "Hello, world!",
    "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "    four spaces,\t\ttabs,   three, and a trailing run      ",
    "\n\n\nblank lines\r\n\r\nwindows",
    "12345678901234567890 and 3.14159, 1,000,000",
    "北京是中华人民共和国的首都。",
    "你好，世界！今天天气很好。",
    "日本語のテキストと한국어",
    "naïve café résumé Привет мир",
    "emoji 😀🎉👍🏽",
    "don't won't it's we'RE they'll I'D",
    "URL: https://example.com/a?b=1&c=two#frag",
    "<|im_start|>user\nWrite a sort in Rust.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    "",
    " ",
    "a",
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field(r: GGUFReader, key: str, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


# ---- tokenizer --------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class PyBpe:
    """Plain-Python byte-level BPE: special tokens split out first (longest first),
    then the Qwen2 regex, the GPT-2 byte map, and merges applied lowest rank first."""

    def __init__(self, tokens: list[str], types: list[int], merges: list[str]):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.specials = sorted((t for t, ty in zip(tokens, types) if ty in (3, 4)), key=len, reverse=True)
        self.special_re = regex.compile("|".join(regex.escape(s) for s in self.specials))
        self.split_re = regex.compile(QWEN2_REGEX)

    def bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, at = min(pairs)
            if rank == 1 << 30:
                break
            first, second = parts[at], parts[at + 1]
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return parts

    def encode(self, text: str) -> list[int]:
        ids, pos = [], 0
        for m in list(self.special_re.finditer(text)) + [None]:
            end = m.start() if m else len(text)
            for piece in self.split_re.findall(text[pos:end]):
                mapped = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
                ids.extend(self.vocab[p] for p in self.bpe(mapped))
            if m:
                ids.append(self.vocab[m.group(0)])
                pos = m.end()
        return ids


def hf_tokenizer(tokens: list[str], types: list[int], merges: list[str]) -> Tokenizer:
    """`tokenizers` configured as Qwen2's tokenizer.json (NFC, Split(regex, isolated),
    ByteLevel without its own regex), from the GGUF vocabulary."""
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    return tok


# ---- forward pass -----------------------------------------------------------------


class Qwen2:
    def __init__(self, r: GGUFReader):
        a = field(r, "general.architecture")
        assert a == "qwen2", a
        g = lambda k, d=None: field(r, f"qwen2.{k}", d)  # noqa: E731
        self.n_layer = int(g("block_count"))
        self.d = int(g("embedding_length"))
        self.n_head = int(g("attention.head_count"))
        self.n_kv = int(g("attention.head_count_kv"))
        self.hd = self.d // self.n_head
        self.theta = float(g("rope.freq_base"))
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self.w = {}
        for t in r.tensors:
            shape = tuple(int(x) for x in reversed(t.shape))
            self.w[t.name] = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        assert "output.weight" in self.w, "expected an untied output head"

    def norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x):  # x [T, H, D], rotate-half (NEOX)
        t, half = x.shape[0], self.hd // 2
        inv = self.theta ** (-np.arange(half, dtype=np.float64) * 2.0 / self.hd)
        ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., :half], x[..., half:]
        return np.concatenate([x0 * c - x1 * s, x1 * c + x0 * s], axis=-1)

    def forward(self, ids: list[int]) -> np.ndarray:
        w, t = self.w, len(ids)
        x = w["token_embd.weight"][ids].astype(np.float64)
        mask = np.triu(np.full((t, t), -np.inf), 1)
        rep = self.n_head // self.n_kv
        for i in range(self.n_layer):
            p = lambda n: w[f"blk.{i}.{n}"]  # noqa: E731
            h = self.norm(x, p("attn_norm.weight"))
            q = (h @ p("attn_q.weight").T + p("attn_q.bias")).reshape(t, self.n_head, self.hd)
            k = (h @ p("attn_k.weight").T + p("attn_k.bias")).reshape(t, self.n_kv, self.hd)
            v = (h @ p("attn_v.weight").T + p("attn_v.bias")).reshape(t, self.n_kv, self.hd)
            q, k = self.rope(q), self.rope(k)
            out = np.empty((t, self.n_head, self.hd))
            for hh in range(self.n_head):
                s = q[:, hh] @ k[:, hh // rep].T / np.sqrt(self.hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // rep]
            x = x + out.reshape(t, self.d) @ p("attn_output.weight").T
            h = self.norm(x, p("ffn_norm.weight"))
            g = h @ p("ffn_gate.weight").T
            x = x + ((g / (1 + np.exp(-g))) * (h @ p("ffn_up.weight").T)) @ p("ffn_down.weight").T
        x = self.norm(x, w["output_norm.weight"])
        head = w["output.weight"]
        return np.concatenate([x @ head[j:j + 16384].T for j in range(0, head.shape[0], 16384)], axis=1)


def lse(row):
    m = row.max()
    return float(m + np.log(np.exp(row - m).sum()))


def top(row, k):
    order = np.lexsort((np.arange(len(row)), -row))[:k]
    return [int(i) for i in order], [round(float(row[i]), 5) for i in order]


# ---- goldens ----------------------------------------------------------------------


def f32_bits(a) -> list[str]:
    return [f"{int(u):08x}" for u in np.asarray(a, dtype=np.float32).reshape(-1).view(np.uint32)]


def gen_dequant(r: GGUFReader, meta: dict, out: Path) -> None:
    tensors = {t.name: t for t in r.tensors}
    picks = [("token_embd.weight", 0), ("token_embd.weight", 151644), ("blk.0.attn_q.weight", 7),
             ("blk.0.attn_v.weight", 3), ("blk.0.ffn_down.weight", 5), ("output.weight", 151645),
             ("blk.0.attn_q.bias", 0)]
    for t in r.tensors:  # one Q4_K tensor (the file's first)
        if t.tensor_type == GGMLQuantizationType.Q4_K:
            picks.append((t.name, 1))
            break
    real = []
    for name, row in picks:
        t = tensors[name]
        qt = t.tensor_type
        bs, ts = GGML_QUANT_SIZES[qt]
        ne0 = int(t.shape[0])
        row_bytes = ne0 // bs * ts
        data = np.asarray(t.data)
        flat = data.view(np.uint8).reshape(-1)[row * row_bytes:(row + 1) * row_bytes]
        n_vals = min(ne0, 512)
        raw = flat[: n_vals // bs * ts].tobytes()
        vals = np.asarray(dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qt), dtype=np.float32).reshape(-1)
        real.append({"tensor": name, "type": qt.name, "row": row, "row_len": ne0, "n_values": int(vals.size),
                     "raw_hex": raw.hex(), "values_f32_bits": f32_bits(vals)})
    write_json(out / "qwen2_dequant.json", {"format": "sdft qwen2 dequant v1", "metadata": meta, "real_tensors": real})


def gen_tokenize(ref: PyBpe, hf: Tokenizer, meta: dict, out: Path) -> None:
    cases = []
    for text in TOKENIZE_CASES:
        ids = ref.encode(text)
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        assert ids == hf_ids, (text, ids, hf_ids)
        assert hf.decode(ids, skip_special_tokens=False) == text, text
        cases.append({"text": text, "ids": ids})
    write_json(out / "qwen2_tokenize.json", {"format": "sdft qwen2 tokenize v1", "metadata": meta,
                                            "notes": "special tokens (CONTROL and USER_DEFINED) parsed; no BOS",
                                            "cases": cases})


def gen_logits(model: Qwen2, ref: PyBpe, tokens: list[str], eos: int, meta: dict, out: Path) -> None:
    prompts = []
    for name, text in PROMPTS:
        ids = ref.encode(text)
        logits = model.forward(ids)
        tops = [top(row, TOP_K) for row in logits]
        prompts.append({"name": name, "text": text, "token_ids": ids,
                        "top_ids": [t[0] for t in tops], "top_logits": [t[1] for t in tops],
                        "logsumexp": [round(lse(row), 5) for row in logits]})
        print(f"{name}: {len(ids)} tokens, next {tokens[tops[-1][0][0]]!r}")
    ids = ref.encode(CHATML)
    gen = []
    for _ in range(GREEDY_MAX):
        nxt = int(np.argmax(model.forward(ids + gen)[-1]))
        gen.append(nxt)
        if nxt == eos:
            break
    text = bytearray()
    inv = {c: b for b, c in bytes_to_unicode().items()}
    for i in gen[:-1] if gen[-1] == eos else gen:
        text.extend(inv[c] for c in tokens[i])
    greedy = {"prompt": CHATML, "prompt_ids": ids, "generated_ids": gen, "text": text.decode("utf-8"),
              "rule": "argmax of the last row (lowest id on ties), stop at and include eos"}
    print(f"greedy: {greedy['text']!r}")
    write_json(out / "qwen2_logits.json", {"format": "sdft qwen2 logits v1", "metadata": meta, "top_k": TOP_K,
                                          "prompts": prompts, "greedy": greedy})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", choices=["logits", "dequant", "tokenize"], action="append")
    args = ap.parse_args()
    only = set(args.only or ["logits", "dequant", "tokenize"])
    r = GGUFReader(str(args.model))
    meta = {
        "generator": "scripts/reference/qwen2_reference.py",
        "command": "python scripts/reference/qwen2_reference.py " + " ".join(sys.argv[1:]),
        "model_file": args.model.name,
        "model_sha256": sha256_file(args.model),
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "gguf_version": getattr(gguf, "__version__", "0.19.0"),
        "tokenizers_version": tokenizers.__version__,
        "regex_version": regex.__version__,
        "compute": "gguf-py f32 weights, float64 activations, full causal attention",
    }
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    assert field(r, "tokenizer.ggml.pre") == "qwen2"
    assert not field(r, "tokenizer.ggml.add_bos_token", False)
    ref = PyBpe(tokens, types, merges)
    args.out.mkdir(parents=True, exist_ok=True)
    if "tokenize" in only:
        gen_tokenize(ref, hf_tokenizer(tokens, types, merges), meta, args.out)
    if "dequant" in only:
        gen_dequant(r, meta, args.out)
    if "logits" in only:
        gen_logits(Qwen2(r), ref, tokens, int(field(r, "tokenizer.ggml.eos_token_id")), meta, args.out)


if __name__ == "__main__":
    main()
