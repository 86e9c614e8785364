#!/usr/bin/env python3
"""Goldens for the paper's rules, produced by the paper's own reference code.

Reads the hard cases of `scripts/reference/cases.json`, runs each through the
unchanged functions of the SDFT reference repository (sail-sg/sdft, both branches)
and writes what they return to a JSON file that the Rust tests
`crates/sdft-eval/tests/reference_goldens.rs` and
`crates/sdft-distill/tests/reference_goldens.rs` compare our implementation with.

Usage (from the repository root; Python 3.11, standard library only):

    python3 scripts/reference/make_goldens.py \
        --sdft-repo /work/.mirror/sail-sg+sdft/repo \
        --cases scripts/reference/cases.json \
        --output crates/sdft-eval/tests/goldens/reference_rules.json

`--sdft-repo` is a local clone or bare mirror of https://github.com/sail-sg/sdft
holding the branches `main` and `reproduce` (or `origin/main`, `origin/reproduce`);
`--main-ref` / `--reproduce-ref` pick other refs. Nothing of that repository is
copied into ours: the files are read with `git show REF:PATH` into a temporary
directory, imported from there by path (importlib), and the directory is deleted.

What is called, unchanged, per branch (`main` = bfb6c25..., `reproduce` = 953518b...):

- `eval/utils.py` `find_last_integer` and `eval/eval_math.py` `check_math`
  (math rule); `int()` of `find_last_integer`'s string is recorded as well, since
  that is where the reference raises (`ValueError`, e.g. "18\\n2").
- `eval/eval_openfunction.py` `check_openfunction`: strict (bool) on `main`,
  partial credit (1 / 0.5 / 0) on `reproduce`. A reference that does not parse as
  a call makes both raise `ValueError`; that is recorded as `{"error": ...}`.
- `eval/keyword_eval_safety.py` `is_safe` (refusal keywords, case-sensitive).
- `eval/gen_distilled_data.py` `verify`, `get_check_func(dataset)` and
  `get_output_data_list` (the keep-or-fallback selection, with its `strip_dict`
  and `find_answer_key`): each distill case is written as a one-row predictions
  JSONL file and the row the reference would write to `distilled_<ds>.json` is
  recorded. `gen_distilled_data` imports `eval_math`, `eval_openfunction`,
  `eval_magicoder` and `utils` by top-level name: the same branch's files are
  loaded under those names first. It also does `import datasets` (unused): a stub
  module `datasets` is put in `sys.modules` before the import.
- `reproduce` branch `src/llmtuner/data/template.py` (the old LLaMA-Factory
  `Template` class with the paper's presets) and `src/llmtuner/data/preprocess.py`
  `construct_example` (how a dataset row becomes `query, response, history,
  system`: `query = prompt + "\\n" + query` when the input is non-empty). The
  prompt of a row is `template.encode_oneturn(...)[0]` (what `do_predict`
  generates from); the per-turn pairs are `template.encode_multiturn(...)` (what
  training supervises), both after `get_template_and_fix_tokenizer`.
  Stubs, put in `sys.modules` before the imports (both files are otherwise used as
  they are): `tiktoken` (a module with an empty `Encoding` class, so
  `isinstance(tokenizer.tokenizer, tiktoken.Encoding)` is false, as for Llama-2),
  `datasets` (`load_from_disk`, never called), and the empty packages `llmtuner`,
  `llmtuner.data`, `llmtuner.extras` (the real `llmtuner/__init__.py` imports the
  whole trainer). The reference's own `llmtuner/extras/logging.py` and
  `llmtuner/extras/constants.py` are loaded by path under their module names.
  No real tokenizer is needed: `PieceTokenizer` below is a fake whose `encode`
  returns the text it is given as one "token" (`("text", s)`) and whose BOS/EOS ids
  are markers, so the pieces the reference would tokenize separately are captured
  exactly, before tokenization. The goldens hold both the pieces (BOS, EOS, text;
  the reference skips empty strings) and the text with BOS/EOS shown as `<s>` and
  `</s>`. transformers is not needed (template.py imports it only under
  TYPE_CHECKING).

The output starts with `generated_by` (the exact command) and `sources` (for each
file: repository, branch, commit, path, sha256 of the file's bytes). It holds no
timestamp, so re-running on the same commits gives the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import types
from pathlib import Path

REPOSITORY = "sail-sg/sdft"

EVAL_FILES = [
    "eval/utils.py",
    "eval/eval_math.py",
    "eval/eval_openfunction.py",
    "eval/eval_magicoder.py",
    "eval/keyword_eval_safety.py",
    "eval/gen_distilled_data.py",
]
TEMPLATE_FILES = [
    "src/llmtuner/extras/logging.py",
    "src/llmtuner/extras/constants.py",
    "src/llmtuner/data/template.py",
    "src/llmtuner/data/preprocess.py",
]

STUBS = [
    "datasets (gen_distilled_data.py and preprocess.py import it; load_from_disk is never called)",
    "tiktoken (template.py and preprocess.py import it; an empty Encoding class)",
    "llmtuner, llmtuner.data, llmtuner.extras (empty packages; the real __init__.py imports the trainer)",
]


# --------------------------------------------------------------------------- git


def git(repo: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True
    ).stdout


def resolve(repo: str, ref: str) -> tuple[str, str]:
    """(branch name as given, commit) for `ref`, trying `origin/<ref>` too."""
    for cand in (ref, f"origin/{ref}"):
        try:
            commit = git(repo, "rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}")
            return cand, commit.decode().strip()
        except subprocess.CalledProcessError:
            continue
    sys.exit(f"error: {repo} has no ref {ref!r} (nor origin/{ref})")


def extract(repo: str, commit: str, paths: list[str], dest: Path, branch: str, sources: list):
    for p in paths:
        data = git(repo, "show", f"{commit}:{p}")
        out = dest / p
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        sources.append(
            {
                "repository": REPOSITORY,
                "branch": branch,
                "commit": commit,
                "path": p,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )


# ------------------------------------------------------------------ importing


def load(name: str, path: Path) -> types.ModuleType:
    """Imports the file at `path` as module `name` (registered in sys.modules, so
    the reference's own `from utils import ...` finds it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def install_stubs():
    datasets = types.ModuleType("datasets")

    def load_from_disk(*_a, **_k):
        raise RuntimeError("stub: datasets.load_from_disk is not available")

    datasets.load_from_disk = load_from_disk
    sys.modules["datasets"] = datasets

    tiktoken = types.ModuleType("tiktoken")

    class Encoding:  # never instantiated
        pass

    tiktoken.Encoding = Encoding
    sys.modules["tiktoken"] = tiktoken

    for pkg in ("llmtuner", "llmtuner.data", "llmtuner.extras"):
        m = types.ModuleType(pkg)
        m.__path__ = []
        sys.modules[pkg] = m


EVAL_MODULES = ["utils", "eval_math", "eval_openfunction", "eval_magicoder",
                "keyword_eval_safety", "gen_distilled_data"]


def load_eval(root: Path) -> dict[str, types.ModuleType]:
    """One branch's eval modules, dependencies first; removed from sys.modules
    afterwards so the other branch's files load under the same names."""
    mods = {}
    try:
        for name in EVAL_MODULES:
            mods[name] = load(name, root / "eval" / f"{name}.py")
    finally:
        for name in EVAL_MODULES:
            sys.modules.pop(name, None)
    return mods


def load_templates(root: Path) -> dict[str, types.ModuleType]:
    src = root / "src" / "llmtuner"
    load("llmtuner.extras.logging", src / "extras" / "logging.py")
    load("llmtuner.extras.constants", src / "extras" / "constants.py")
    template = load("llmtuner.data.template", src / "data" / "template.py")
    preprocess = load("llmtuner.data.preprocess", src / "data" / "preprocess.py")
    return {"template": template, "preprocess": preprocess}


# ------------------------------------------------------------ fake tokenizer

BOS = ("bos",)
EOS = ("eos",)


class PieceTokenizer:
    """Stands in for the Llama-2 tokenizer: each string the template encodes comes
    back as one ("text", s) id, BOS/EOS are markers. Enough for template.py's
    `_get_special_ids`, `_convert_inputs_to_ids` and
    `get_template_and_fix_tokenizer`."""

    bos_token_id = BOS
    eos_token_id = EOS
    pad_token_id = EOS
    add_bos_token = True
    eos_token = "</s>"
    pad_token = "</s>"

    def encode(self, text, add_special_tokens=True, **_kw):
        assert add_special_tokens is False, "template.py encodes pieces without special tokens"
        return [("text", text)]

    def convert_tokens_to_ids(self, token):  # only dict slots; none in the paper's presets
        return ("token", token)

    def add_special_tokens(self, *_a, **_k):
        return 0


def pieces_json(ids: list) -> dict:
    pieces, text = [], []
    for i in ids:
        if i == BOS:
            pieces.append({"type": "bos"})
            text.append("<s>")
        elif i == EOS:
            pieces.append({"type": "eos"})
            text.append("</s>")
        elif i[0] == "text":
            pieces.append({"type": "text", "text": i[1]})
            text.append(i[1])
        else:
            raise ValueError(f"unexpected id {i!r}")
    return {"text": "".join(text), "pieces": pieces}


# ------------------------------------------------------------------- helpers


def call(fn, *args):
    """{"value": fn(*args)} or {"error": "Type: message"} when the reference raises."""
    try:
        return {"value": fn(*args)}
    except Exception as e:  # noqa: BLE001 -- recorded as a golden
        return {"error": f"{type(e).__name__}: {e}"}


def math_golden(mods, predict: str, label: str) -> dict:
    fli = mods["utils"].find_last_integer
    out = {}
    for key, text in (("predict", predict), ("label", label)):
        r = call(fli, text)
        out[f"{key}_last"] = r
        if "value" in r:
            i = call(int, r["value"])
            # Python ints of any size, as decimal strings.
            out[f"{key}_int"] = {"value": str(i["value"])} if "value" in i else i
    out["check_math"] = call(mods["eval_math"].check_math, {"label": label, "predict": predict})
    return out


def distill_golden(mods, case: dict, tmp: Path) -> dict:
    gd = mods["gen_distilled_data"]
    origin = copy.deepcopy(case["origin"])
    label = case.get("label", origin[case["answer_field"]])
    pred = {"label": label, "predict": case["predict"]}
    stripped = copy.deepcopy(pred)
    mods["utils"].strip_dict(stripped)
    check_func = gd.get_check_func(case["dataset"])
    out = {
        "verify": call(gd.verify, stripped),
        "check": call(check_func, stripped),
    }
    path = tmp / f"predict_{case['id']}.jsonl"
    path.write_text(json.dumps(pred, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = call(gd.get_output_data_list, [origin], str(path), check_func)
    if "error" in rows:
        out["row"] = rows
    else:
        (row,) = rows["value"]
        out["row"] = {"value": row}
        # What the reference decided: the answer field holds the stripped rewrite.
        out["kept"] = bool(out["verify"].get("value")) and bool(out["check"].get("value"))
    return out


def template_golden(tmods, preset: str, row: dict) -> dict:
    template_mod, preprocess = tmods["template"], tmods["preprocess"]
    tok = PieceTokenizer()
    template = template_mod.get_template_and_fix_tokenizer(preset, tok)
    # One dataset row as the loader hands it to construct_example (columns renamed
    # to prompt/query/response/history; `system` when the dataset sets one).
    examples = {
        "prompt": [row["instruction"]],
        "query": [row.get("input", "")],
        "response": [row["output"]],
        "history": [[list(t) for t in row.get("history", [])]],
    }
    if "system" in row:
        examples["system"] = [row["system"]]
    ((query, response, history, system),) = list(preprocess.construct_example(examples))
    prompt_ids, answer_ids = template.encode_oneturn(tok, query, response, history, system)
    turns = template.encode_multiturn(tok, query, response, history, system)
    return {
        "construct_example": {"query": query, "response": response,
                              "history": history, "system": system},
        "prompt": pieces_json(prompt_ids),
        "answer": pieces_json(answer_ids),
        "turns": [{"prompt": pieces_json(s), "response": pieces_json(t)} for s, t in turns],
    }


# ---------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdft-repo", required=True, help="clone or bare mirror of sail-sg/sdft")
    ap.add_argument("--cases", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--main-ref", default="main")
    ap.add_argument("--reproduce-ref", default="reproduce")
    args = ap.parse_args()

    cases = json.loads(args.cases.read_text(encoding="utf-8"))
    refs = {
        "main": resolve(args.sdft_repo, args.main_ref),
        "reproduce": resolve(args.sdft_repo, args.reproduce_ref),
    }
    sources: list = []
    install_stubs()
    with tempfile.TemporaryDirectory(prefix="sdft-ref-") as tmpdir:
        tmp = Path(tmpdir)
        evals, tmods = {}, None
        for key, (branch, commit) in refs.items():
            extract(args.sdft_repo, commit, EVAL_FILES, tmp / key, branch, sources)
            evals[key] = load_eval(tmp / key)
        branch, commit = refs["reproduce"]
        extract(args.sdft_repo, commit, TEMPLATE_FILES, tmp / "reproduce", branch, sources)
        tmods = load_templates(tmp / "reproduce")

        out = {
            "generated_by": {
                "command": " ".join(shlex.quote(a) for a in ["python3", *sys.argv]),
                "script": "scripts/reference/make_goldens.py",
                "cases": str(args.cases),
                "python": sys.version.split()[0],
                "stubs": STUBS,
                "note": "Values are what the reference functions return; {\"error\": ...} where they raise.",
            },
            "sources": sources,
            "counts": {},
        }

        out["openfunction"] = [
            {
                **c,
                "main": call(evals["main"]["eval_openfunction"].check_openfunction,
                             {"label": c["label"], "predict": c["predict"]}),
                "reproduce": call(evals["reproduce"]["eval_openfunction"].check_openfunction,
                                  {"label": c["label"], "predict": c["predict"]}),
            }
            for c in cases["openfunction"]
        ]
        out["math"] = [
            {**c, **{k: math_golden(evals[k], c["predict"], c["label"]) for k in refs}}
            for c in cases["math"]
        ]
        out["safety"] = [
            {**c, **{k: call(evals[k]["keyword_eval_safety"].is_safe, c["response"]) for k in refs}}
            for c in cases["safety"]
        ]
        out["distill"] = [
            {**c, **{k: distill_golden(evals[k], c, tmp / k) for k in refs}}
            for c in cases["distill"]
        ]
        out["templates"] = [
            {
                "id": f"{preset}/{row['id']}",
                "preset": preset,
                "row": row,
                "reproduce": template_golden(tmods, preset, row),
            }
            for preset in cases["templates"]["presets"]
            for row in cases["templates"]["rows"]
        ]
        for key in ("openfunction", "math", "safety", "distill", "templates"):
            out["counts"][key] = len(out[key])

    # The math, safety and distill files are identical in both branches; say so.
    same = {}
    for s in sources:
        same.setdefault(s["path"], set()).add(s["sha256"])
    out["generated_by"]["identical_in_both_branches"] = sorted(
        p for p, h in same.items() if len(h) == 1 and sum(s["path"] == p for s in sources) == 2
    )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.output}: " + ", ".join(f"{k} {v}" for k, v in out["counts"].items()))


if __name__ == "__main__":
    main()
