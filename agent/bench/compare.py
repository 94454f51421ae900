"""`make bench`'s candle-vs-PyTorch table: for each shape and thread count, one process
of the agent's model (examples/throughput.rs) and one of the PyTorch reference
(torch_gpt.py), one after the other, each measuring its own training tokens per second
and peak resident memory. The ratio (candle / PyTorch) is the figure: absolute numbers
move with whatever else the machine runs.

    python compare.py --throughput target/release/examples/throughput --corpus agent/data/kjv.txt.gz
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# name, layers, heads, width, context, timed steps
# (a few seconds a run: shorter runs were dominated by the machine's noise)
SHAPES = [
    ("tiny", 2, 4, 64, 64, 200),
    ("4×128", 4, 4, 128, 128, 40),
    ("small", 4, 8, 256, 128, 16),
]


def run(cmd, threads):
    env = dict(os.environ)
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--throughput", required=True, help="the built throughput example")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5, help="best of N runs per cell")
    a = ap.parse_args()
    print("candle vs PyTorch: training tokens/s (forward, backward, AdamW + clipping), batch 8 × context")
    print("| shape | params | threads | candle tokens/s | PyTorch tokens/s | ratio | candle peak RSS | PyTorch peak RSS | loss after the run (candle / PyTorch) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, layers, heads, width, context, steps in SHAPES:
        shape = ["--layers", str(layers), "--heads", str(heads), "--width", str(width), "--context", str(context), "--steps", str(steps)]
        params = 256 * width + context * width + layers * (12 * width * width + 13 * width) + 2 * width
        for threads in [int(t) for t in a.threads.split(",")]:
            best = {}
            for _ in range(a.repeats):
                for side, cmd in (
                    ("candle", [a.throughput] + shape),
                    ("torch", [sys.executable, os.path.join(HERE, "torch_gpt.py"), "--threads", str(threads), "--corpus", a.corpus] + shape),
                ):
                    r = run(cmd, threads)
                    if side not in best or r["tokens_per_s"] > best[side]["tokens_per_s"]:
                        best[side] = r
            c, t = best["candle"], best["torch"]
            print(
                f"| {name} | {params:,} | {threads} | {c['tokens_per_s']:,.0f} | {t['tokens_per_s']:,.0f} "
                f"| {c['tokens_per_s'] / t['tokens_per_s']:.2f}× | {c['peak_rss_kib'] / 1024:.0f} MiB "
                f"| {t['peak_rss_kib'] / 1024:.0f} MiB | {c['last_loss']:.3f} / {t['last_loss']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
