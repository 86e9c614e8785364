"""Compares two `sdft distill` outputs row by row (by id): identical distilled
texts and identical keep/fallback decisions. Needs pyarrow (a venv, not the
project's tests): python3 -m venv V && V/bin/pip install pyarrow
Usage: V/bin/python scripts/serving/compare.py A.parquet B.parquet"""
import sys
import pyarrow.parquet as pq

a, b = ({r["id"]: r for r in pq.read_table(p).to_pylist()} for p in sys.argv[1:3])
assert a.keys() == b.keys(), "the outputs hold different ids"
n = len(a)
same_text = sum(a[i]["distilled"] == b[i]["distilled"] for i in a)
same_kept = sum(a[i]["kept"] == b[i]["kept"] for i in a)
same_prefix = []
for i in a:
    x, y = a[i]["distilled"] or "", b[i]["distilled"] or ""
    k = 0
    while k < min(len(x), len(y)) and x[k] == y[k]:
        k += 1
    same_prefix.append(k / max(len(x), len(y), 1))
print(f"rows {n}: identical distilled texts {same_text}/{n}, identical keep/fallback {same_kept}/{n}")
print(f"kept: A {sum(r['kept'] for r in a.values())}, B {sum(r['kept'] for r in b.values())}")
print(f"mean common-prefix fraction of the texts: {sum(same_prefix) / n:.3f}")
