#!/usr/bin/env python3
"""Renames one export of a wasm module: rename_export.py FILE OLD NEW.

Why: a `#[no_mangle]` function named `round` clashes with the libm `round` symbol
the wasm linker also sees, and the run contract's `round` view silently loses its
export. The contract exports it as `round_view` and `make contracts` renames the
export to `round` here (deterministic: same input bytes, same output bytes).
"""
import sys


def leb(buf, i):
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def enc(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def main(path, old, new):
    wasm = open(path, "rb").read()
    out, i, renamed = bytearray(wasm[:8]), 8, 0
    while i < len(wasm):
        sid = wasm[i]
        size, body = leb(wasm, i + 1)
        end = body + size
        section = wasm[body:end]
        if sid == 7:
            count, j = leb(section, 0)
            rebuilt = bytearray(enc(count))
            for _ in range(count):
                n, j = leb(section, j)
                name = section[j:j + n].decode()
                j += n
                kind = section[j]
                idx, j = leb(section, j + 1)
                if name == new:
                    sys.exit(f"{path} already exports {new}")
                if name == old:
                    name, renamed = new, renamed + 1
                raw = name.encode()
                rebuilt += enc(len(raw)) + raw + bytes([kind]) + enc(idx)
            section = bytes(rebuilt)
        out += bytes([sid]) + enc(len(section)) + section
        i = end
    if renamed != 1:
        sys.exit(f"{path} has no export named {old}")
    open(path, "wb").write(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
