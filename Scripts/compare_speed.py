#!/usr/bin/env python3
"""Speed of this engine against the PyTorch reference, on the same inputs, in one run.

The reference is the authors' algorithm (pairwise concatenation, no reductions) written in
Scripts/universeg_torch.py (UniverSegReference); `--fast` also times the same network with the
exact reductions in PyTorch (UniverSegFast). The Swift side is `universeg-worker bench` with the
same weights file and the same inputs (written to a temporary safetensors file).

    python3 Scripts/compare_speed.py [--sizes 1,8,16,64] [--threads 2] [--repeats 3] [--fast]

Needs torch (pip install torch) and a release build (swift build -c release). For fair figures
run it on a quiet machine: both sides are timed in turn, median of --repeats after a warm-up.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Scripts"))
from universeg_torch import load_model, save_safetensors  # noqa: E402


def time_torch(model, query, images, labels, n, repeats):
    args = (query, images[:, :n], labels[:, :n])
    with torch.no_grad():
        model(*args)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*args)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(ROOT / "Tests/SegModelTests/Fixtures/v1.weights.safetensors"))
    ap.add_argument("--sizes", default="1,8,16,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="also time PyTorch with the exact reductions")
    ap.add_argument("--binary", default=str(ROOT / ".build/release/universeg-worker"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)

    reference, meta = load_model(args.weights, fast=False)
    fast = load_model(args.weights, fast=True)[0] if args.fast else None
    size = int(meta.get("input_size", "128"))
    g = torch.Generator().manual_seed(0)
    nmax = max(sizes)
    query = torch.rand(1, 1, size, size, generator=g)
    images = torch.rand(1, nmax, 1, size, size, generator=g)
    labels = (torch.rand(1, nmax, 1, size, size, generator=g) > 0.5).float()

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.safetensors"
        save_safetensors(inputs, {"query": query.numpy(), "support_images": images[0].numpy(),
                                  "support_labels": labels[0].numpy()}, {"format": "universeg-case"})
        rows = {}
        for n in sizes:
            rows[n] = {"torch_ms": time_torch(reference, query, images, labels, n, args.repeats)}
            if fast is not None:
                rows[n]["torch_fast_ms"] = time_torch(fast, query, images, labels, n, args.repeats)
        out = subprocess.run([args.binary, "bench", "--weights", args.weights, "--inputs", str(inputs),
                              "--sizes", args.sizes, "--threads", str(args.threads),
                              "--repeats", str(args.repeats), "--json"],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            r = json.loads(line)
            rows[r["n"]]["swift_ms"] = r["median_ms"]
            rows[r["n"]]["rss"] = r["peak_rss_mib"]

    print(f"torch {torch.__version__}, {args.threads} threads, weights {Path(args.weights).name}, "
          f"{size}x{size}, median of {args.repeats}")
    header = "    N   torch ref ms" + ("  torch fast ms" if fast is not None else "") + "   swift ms   speed-up"
    print(header)
    for n in sizes:
        r = rows[n]
        line = f"{n:5d}  {r['torch_ms']:12.1f}"
        if fast is not None:
            line += f"  {r['torch_fast_ms']:13.1f}"
        line += f"  {r['swift_ms']:9.1f}  {r['torch_ms'] / r['swift_ms']:8.2f}x"
        print(line)


if __name__ == "__main__":
    main()
