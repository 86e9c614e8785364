"""Independent reference for sdft_core::rng (crates/sdft-core/tests/rng.rs).

Prints FNV-1a 64 of a few strings and the first three outputs of the per-row stream
`SplitMix64::for_row(seed, id)`: state = seed ^ rotl(fnv1a64(id), 17), one output
skipped. Plain Python, no packages:  python3 scripts/reference/row_stream.py
"""

M = (1 << 64) - 1


def nxt(s):
    s = (s + 0x9E3779B97F4A7C15) & M
    z = s
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return s, z ^ (z >> 31)


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & M
    return h


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


for text in [b"", b"a", b"foobar"]:
    print("fnv1a64(%r) = %016x" % (text, fnv1a64(text)))
for seed, row in [(42, "row-1"), (7, "gsm8k-00012"), (0, "")]:
    s, _ = nxt(seed ^ rotl(fnv1a64(row.encode()), 17))
    out = []
    for _ in range(3):
        s, v = nxt(s)
        out.append("%016x" % v)
    print("for_row(%d, %r): %s" % (seed, row, " ".join(out)))
