"""Reads a crowdtrain checkpoint with Python's `safetensors` (an independent reader) and
prints one line per tensor: name, dtype, shape, sha256 of its little-endian bytes,
and the first value. agent/tests/checkpoint_vectors.rs compares them with Rust's."""

import hashlib
import sys

import numpy as np
from safetensors.numpy import load_file


def main(path: str) -> None:
    tensors = load_file(path)
    for name in sorted(tensors):
        t = tensors[name]
        data = np.ascontiguousarray(t, dtype="<f4").tobytes()
        shape = "x".join(str(d) for d in t.shape)
        first = repr(float(t.reshape(-1)[0])) if t.size else "none"
        print(f"{name} {t.dtype} {shape} {hashlib.sha256(data).hexdigest()} {first}")


if __name__ == "__main__":
    main(sys.argv[1])
