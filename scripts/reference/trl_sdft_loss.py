"""Goldens for the on-policy self-distillation loss (sdft-model's
`kernels::train::divergence`), from TRL's own functions and torch autograd.

For fixed logit arrays (drawn here, rounded to float32, and stored in the
golden so that the Rust test reads the same inputs), every case records the
per-position loss of `trl.experimental.sdft.loss_utils`:

- `compute_topk_self_distillation_loss` (student top-K support, with and
  without the tail bucket) and
- `compute_full_logit_self_distillation_loss` (the whole vocabulary),

for TRL's `distillation_alpha` 1 (reverse KL), 0 (forward KL) and 0.5 / 0.2
(the JSD mixture), and the gradient of the summed loss with respect to the
student's logits (torch autograd, float64; the teacher is detached).

Command (from the repository root; writes the golden):

    ~/.cache/sdft-anchors/bin/python scripts/reference/trl_sdft_loss.py \
        crates/sdft-train/tests/goldens/trl_sdft_loss.json

The environment: `python3 -m venv ~/.cache/sdft-anchors &&
~/.cache/sdft-anchors/bin/pip install torch transformers peft safetensors trl`
(the versions used are recorded in the golden's `versions`).
"""

import json
import sys

import torch
import trl
from trl.experimental.sdft.loss_utils import (
    compute_full_logit_self_distillation_loss,
    compute_topk_self_distillation_loss,
)

ROWS, VOCAB = 6, 40


def logits(gen, scale):
    x = torch.randn(ROWS, VOCAB, generator=gen, dtype=torch.float64) * scale
    # Exactly representable in float32: the Rust side reads them as f32.
    return x.to(torch.float32).to(torch.float64)


def main(out):
    gen = torch.Generator().manual_seed(20260119)
    student = logits(gen, 2.0)
    # A teacher near the student on most rows, far on the last two.
    teacher = student + logits(gen, 0.7)
    teacher[-2:] = logits(gen, 3.0)[-2:]
    teacher_logp = torch.log_softmax(teacher, dim=-1)
    teacher_logp = teacher_logp.to(torch.float32).to(torch.float64)
    cases = []
    for alpha in [1.0, 0.0, 0.5, 0.2]:
        for topk, tail in [(0, True), (5, True), (5, False), (1, True)]:
            z = student.clone().requires_grad_(True)
            # The teacher's logits are its log-probabilities: both functions
            # normalise them again, which leaves them unchanged.
            if topk == 0:
                loss = compute_full_logit_self_distillation_loss(
                    z, teacher_logp, distillation_alpha=alpha
                )
            else:
                loss = compute_topk_self_distillation_loss(
                    z,
                    teacher_logp,
                    distillation_topk=topk,
                    distillation_alpha=alpha,
                    distillation_add_tail=tail,
                )
            loss.sum().backward()
            cases.append(
                {
                    "alpha": alpha,
                    "topk": topk,
                    "tail": tail,
                    "loss": loss.detach().tolist(),
                    "grad": z.grad.tolist(),
                }
            )
    golden = {
        "made_by": "scripts/reference/trl_sdft_loss.py",
        "versions": {"torch": torch.__version__, "trl": trl.__version__},
        "rows": ROWS,
        "vocab": VOCAB,
        "student_logits": student.tolist(),
        "teacher_logprobs": teacher_logp.tolist(),
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {out}: {len(cases)} cases, torch {torch.__version__}, trl {trl.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "trl_sdft_loss.json")
