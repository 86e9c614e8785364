#!/usr/bin/env python3
"""Write a copy of a GGUF with every tensor dequantized (by gguf-py) to F32.

Used only for the llama.cpp cross-check: llama.cpp running on the F32 copy with an F32
KV cache computes with exactly the weights the NumPy reference uses (no activation
quantization), so its logits must match the goldens to ~1e-4.

  ~/.cache/sdft/pyref-venv/bin/python scripts/reference/make_f32_gguf.py \
      ~/.cache/sdft/models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smol-f32.gguf
"""

import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    r = GGUFReader(src)
    w = GGUFWriter(dst, arch=r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        if key == "general.file_type":
            w.add_key_value(key, 0, vtype)  # LLAMA_FTYPE_ALL_F32
        elif vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))
        w.add_tensor(t.name, np.ascontiguousarray(dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
