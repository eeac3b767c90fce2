#!/usr/bin/env python3
"""How much a light co-located process slows the engine: `bench` alone and beside a periodic one.

    python3 Scripts/bench_interference.py [--binary PATH ...] [--support-size 32] [--threads 2]
                                          [--rounds 6] [--period-ms 2] [--busy-ms 0.5]

For each round and each binary (default: the release build), runs `universeg-worker bench` (shipped
weights, one support size, --repeats 20) once alone and once while a helper process wakes every
--period-ms and spins for --busy-ms (0.5 ms, then a 2 ms sleep: a fifth of one core, like a busy
broker or other service on the same node; smaller loads give effects below this VM's noise). Binaries alternate within each round, so drift of a shared machine
falls on all of them alike. Prints each measurement, then per binary the median of the alone
and beside medians and their ratio. A parallel pass that splits its work statically waits for
its slowest thread, so the ratio grows with interference; this measures by how much.
"""
import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spin(period_s, busy_s, stop):
    while not stop.is_set():
        t = time.perf_counter()
        while time.perf_counter() - t < busy_s:
            pass
        time.sleep(period_s)


def bench(binary, args):
    out = subprocess.run([binary, "bench", "--weights", os.path.join(ROOT, "Config/models/universeg-cpu.safetensors"),
                          "--sizes", str(args.support_size), "--threads", str(args.threads), "--repeats", "20", "--json"],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", help="universeg-worker binary (repeatable; default: the release build)")
    ap.add_argument("--support-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--period-ms", type=float, default=2.0)
    ap.add_argument("--busy-ms", type=float, default=0.5)
    args = ap.parse_args()
    binaries = args.binary or [os.path.join(ROOT, ".build", "release", "universeg-worker")]
    results = {b: {"alone": [], "beside": []} for b in binaries}
    for r in range(args.rounds):
        for b in binaries:
            alone = bench(b, args)
            stop = multiprocessing.Event()
            helper = multiprocessing.Process(target=spin, args=(args.period_ms / 1000, args.busy_ms / 1000, stop))
            helper.start()
            try:
                beside = bench(b, args)
            finally:
                stop.set()
                helper.join()
            results[b]["alone"].append(alone)
            results[b]["beside"].append(beside)
            print(f"round {r + 1} {b}: alone {alone:.1f} ms, beside the helper {beside:.1f} ms", flush=True)
    print(f"N={args.support_size}, {args.threads} threads, helper busy {args.busy_ms} ms every {args.period_ms} ms, "
          f"{args.rounds} rounds:")
    for b in binaries:
        a, s = statistics.median(results[b]["alone"]), statistics.median(results[b]["beside"])
        print(f"  {b}: alone {a:.1f} ms, beside {s:.1f} ms, ratio {s / a:.3f}")


if __name__ == "__main__":
    main()
