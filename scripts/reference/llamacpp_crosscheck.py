#!/usr/bin/env python3
"""Optional cross-check of the golden files against llama.cpp (via llama-cpp-python).

Not needed to regenerate the goldens. It answers "does the NumPy reference agree with
llama.cpp on the same GGUF?" for:
  * tokenization of every case in tokenize_cases.json (exact id equality),
  * the logits of every prompt in smollm2_logits.json (llama.cpp's CPU backend quantizes
    activations to Q8 for quantized matmuls, so expect differences of ~1e-2..1e-1, not 1e-5),
  * the greedy continuation in smollm2_greedy.json.

Usage (separate venv, llama-cpp-python builds llama.cpp from source):
  python3 -m venv /tmp/llcpp-venv
  /tmp/llcpp-venv/bin/pip install llama-cpp-python numpy
  /tmp/llcpp-venv/bin/python scripts/reference/llamacpp_crosscheck.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from llama_cpp import Llama

DEFAULT_MODEL = Path.home() / ".cache/sdft/models/SmolLM2-135M-Instruct.Q4_1.gguf"
GOLDEN = Path(__file__).resolve().parents[2] / "crates/sdft-model/tests/golden"


def lse(row: np.ndarray) -> float:
    r = row.astype(np.float64)
    m = r.max()
    return float(m + np.log(np.exp(r - m).sum()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--golden", type=Path, default=GOLDEN)
    ap.add_argument("--f32-kv", action="store_true", help="F32 KV cache instead of llama.cpp's default F16")
    args = ap.parse_args()

    kv = dict(type_k=0, type_v=0) if args.f32_kv else {}  # 0 = GGML_TYPE_F32
    llm = Llama(model_path=str(args.model), n_ctx=512, n_batch=512, logits_all=True, n_threads=2,
                verbose=False, seed=0, **kv)
    ok = True

    tc = json.loads((args.golden / "tokenize_cases.json").read_text())
    n_bad = 0
    for c in tc["cases"]:
        ids = llm.tokenize(c["text"].encode("utf-8"), add_bos=False, special=c["parse_special"]) if c["text"] else []
        if ids != c["ids"]:
            n_bad += 1
            print(f"TOKENIZE MISMATCH {c['text']!r} special={c['parse_special']}\n  golden   {c['ids']}\n  llama.cpp {ids}")
    print(f"tokenize: {len(tc['cases']) - n_bad}/{len(tc['cases'])} cases identical to llama.cpp")
    ok &= n_bad == 0

    lg = json.loads((args.golden / "smollm2_logits.json").read_text())
    fixed = np.array(lg["fixed_token_ids"])
    for p in lg["prompts"]:
        ids = p["token_ids"]
        ids_cpp = llm.tokenize(p["text"].encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)], dtype=np.float64)
        gold_fixed = np.array(p["fixed_logits"])
        d_fixed = np.abs(scores[:, fixed] - gold_fixed)
        d_lse = np.abs(np.array([lse(r) for r in scores]) - np.array(p["logsumexp"]))
        top1_cpp = scores.argmax(-1)
        top1_gold = np.array([t[0] for t in p["top_ids"]])
        agree = float(np.mean(top1_cpp == top1_gold))
        d_top = np.abs(np.array([scores[i, p["top_ids"][i]] for i in range(len(ids))]) - np.array(p["top_logits"]))
        print(f"logits {p['name']}: n={len(ids)} tokenizer_same={ids_cpp == ids} "
              f"max|d fixed|={d_fixed.max():.2e} mean={d_fixed.mean():.2e} max|d top20|={d_top.max():.2e} "
              f"max|d lse|={d_lse.max():.2e} top1_agree={agree:.3f}")
        ok &= ids_cpp == ids

    gr = json.loads((args.golden / "smollm2_greedy.json").read_text())
    ids = list(gr["prompt_token_ids"])
    gen = []
    for _ in range(gr["max_new_tokens"]):
        llm.reset()
        llm.eval(ids + gen)
        row = np.array(llm.scores[len(ids) + len(gen) - 1])
        gen.append(int(row.argmax()))
    same = gen == gr["generated_ids"]
    n_same_prefix = next((i for i, (a, b) in enumerate(zip(gen, gr["generated_ids"])) if a != b), len(gen))
    print(f"greedy: llama.cpp {gen}\n        golden    {gr['generated_ids']}\n        identical={same} "
          f"(common prefix {n_same_prefix}) text={llm.detokenize(gen, special=True).decode('utf-8', 'replace')!r}")
    print("OK" if ok else "MISMATCHES FOUND")


if __name__ == "__main__":
    main()
