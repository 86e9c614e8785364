"""The round trip of `sdft data export --format trl`: the exported JSONL goes
through TRL's own SFTTrainer data path (datasets' `json` loader, then
SFTTrainer's tokenization with the model's chat template) and must give, row by
row, the token ids our `sdft train` trains on.

Run on a development machine (TRL, transformers and datasets from pip; the
project's tests never import them):

    M=smollm2-135m-instruct
    sdft model convert --model $M --output /tmp/smol-hf
    sdft data export --format trl --input ../shared/data/sdft/gsm8k_train.json --column output \
        --model $M --template gsm8k --limit 8 --output /tmp/export
    for r in 1 2 3 4 5 6 7 8; do
      sdft template render gsm8k --input ../shared/data/sdft/gsm8k_train.json --row $r \
          --model $M --json > /tmp/export/ours-$r.json; done
    python scripts/reference/trl_export_roundtrip.py --hf-dir /tmp/smol-hf \
        --jsonl /tmp/export/sdft-output.jsonl --ours '/tmp/export/ours-*.json'

It prints the versions, then per row whether TRL's `input_ids` equal ours
(prompt ids + target ids), or extend them (and by which tokens).
"""

import argparse
import glob
import json
import re

import datasets
import torch
import transformers
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hf-dir", required=True)
    p.add_argument("--jsonl", required=True)
    p.add_argument("--ours", required=True, help="glob of `sdft template render --json` files, one per row")
    a = p.parse_args()
    print(f"trl {trl.__version__}, transformers {transformers.__version__}, "
          f"datasets {datasets.__version__}, torch {torch.__version__}")
    ds = datasets.load_dataset("json", data_files=a.jsonl, split="train")
    tok = AutoTokenizer.from_pretrained(a.hf_dir)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir)
    cfg = SFTConfig(output_dir="/tmp/trl-roundtrip", max_length=4096, report_to=[], packing=False,
                    use_cpu=True, bf16=False)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    rows = trainer.train_dataset
    ours = sorted(glob.glob(a.ours), key=lambda f: int(re.findall(r"(\d+)", f)[-1]))
    same = prefix = 0
    for i, path in enumerate(ours):
        o = json.load(open(path))
        want = o["ids"] + o["target_ids"]
        got = list(rows[i]["input_ids"])
        if got == want:
            same += 1
            print(f"row {i + 1}: {len(got)} ids, equal to ours")
        elif got[: len(want)] == want:
            prefix += 1
            tail = got[len(want):]
            print(f"row {i + 1}: ours ({len(want)} ids) is TRL's prefix; TRL adds {tail} "
                  f"{tok.convert_ids_to_tokens(tail)}")
        else:
            at = next((j for j, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            print(f"row {i + 1}: differs at id {at}: TRL {got[at:at + 4]}, ours {want[at:at + 4]}")
    print(f"{same} of {len(ours)} rows equal, {prefix} equal up to TRL's extra trailing ids")


if __name__ == "__main__":
    main()
