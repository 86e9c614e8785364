#!/usr/bin/env python3
"""HF transformers' side of `cargo xtask gpu-check --compare-hf PYTHON`.

Builds a randomly initialised LlamaForCausalLM from the config.json that gpu-check
writes (the same shape and dtype as the sdft-rs run) on the first CUDA device and
measures, as gpu-check does for sdft-rs (best of --reps after one warm-up run):
  - prefill tokens/s: one --prompt-token sequence through the model;
  - decode tokens/s at each --batch size: greedy `generate` of --new-tokens tokens
    (min_new_tokens = max_new_tokens, so EOS does not stop) minus a 1-token run,
    from 32-token prompts, summed over the batch.
Writes {"prefill_tokens_per_s": x, "decode_tokens_per_s": {"1": y, "32": z}, ...}
to --out. Needs torch (with CUDA) and transformers; nothing in the project's tests
or CI runs it.
"""
import argparse
import json
import time

import torch
import transformers


def best(reps, f):
    f()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--batch", default="1,32")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg["torch_dtype"], torch.float32)
    config = transformers.LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype")})
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(config).to(dtype).eval()
    vocab = cfg["vocab_size"]

    with torch.inference_mode():
        ids = (torch.arange(a.prompt, device="cuda") % (vocab - 3) + 3).unsqueeze(0)
        prefill = a.prompt / best(a.reps, lambda: model(ids, use_cache=False, logits_to_keep=1))

        decode = {}
        for b in [int(x) for x in a.batch.split(",")]:
            prompts = torch.stack(
                [(torch.arange(32, device="cuda") * 31 + i * 17) % (vocab - 3) + 3 for i in range(b)]
            )
            mask = torch.ones_like(prompts)

            def gen(n):
                return lambda: model.generate(
                    input_ids=prompts, attention_mask=mask, do_sample=False,
                    max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                )

            t1 = best(a.reps, gen(1))
            tn = best(a.reps, gen(a.new_tokens))
            decode[str(b)] = b * (a.new_tokens - 1) / max(tn - t1, 1e-9)

    out = {
        "prefill_tokens_per_s": prefill,
        "decode_tokens_per_s": decode,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
