#!/usr/bin/env python3
"""Speed of this engine against PyTorch and ONNX Runtime, on the same inputs, in one run.

Peers (each timed in-process after a warm-up; the median of --repeats rounds, each round timing
one pass of every peer in turn, so that all of them sample the same periods of a busy machine):
- the authors' algorithm (pairwise concatenation, no reductions) in PyTorch
  (Scripts/universeg_torch.py UniverSegReference);
- `--fast`: the same network with the exact reductions in PyTorch (UniverSegFast);
- `--onnx`: both networks exported to ONNX and run by ONNX Runtime (CPU, --threads intra-op
  threads, all graph optimizations).
This engine: `universeg-worker bench` (in-process, same weights and inputs) and, with
`--segment`, the whole `universeg-worker segment` process (start, load weights and an N-entry
support set from PNG files, infer, write the mask), timed from outside.
Every peer's logits are checked against this engine's (max |difference|). The header names the
CPU, its vector extensions, the OpenBLAS core and whether OPENBLAS_CORETYPE was set.

    python3 Scripts/compare_speed.py [--sizes 16,64] [--threads 2] [--repeats 5] [--fast] [--onnx] [--segment]
    python3 Scripts/compare_speed.py --all      # all of them

Needs torch (and onnxruntime + onnx for --onnx) and a release build. The binary is the one the
Debian package ships (the Swift runtime linked in: `Scripts/package` builds it in .build-static,
or `swift build -c release --static-swift-stdlib --product universeg-worker --scratch-path
.build-static`) when it is there, else .build/release; the header says which. For fair figures run
it on a quiet machine: the runtimes are timed in turn.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Scripts"))
from universeg_torch import load_model, save_safetensors  # noqa: E402


def torch_logits(model, query, images, labels, n):
    with torch.no_grad():
        return model(query, images[:, :n], labels[:, :n]).numpy().reshape(query.shape[-2:])


def onnx_session(model, query, images, labels, n, threads, path):
    import onnxruntime as ort
    args = (query, images[:, :n], labels[:, :n])
    names = ["query", "support_images", "support_labels"]
    kwargs = dict(input_names=names, output_names=["logits"], opset_version=17)
    try:
        torch.onnx.export(model, args, str(path), dynamo=False, **kwargs)
    except TypeError:  # a torch without the dynamo switch
        torch.onnx.export(model, args, str(path), **kwargs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = dict(zip(names, (a.numpy() for a in args)))
    return session, feed


def write_png(path, pixels):
    """8-bit grayscale PNG of a 2-D uint8 array."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_support(directory, query, images, labels):
    """The inputs as PNG files: a support set directory and a query image."""
    (directory / "images").mkdir(parents=True)
    (directory / "labels").mkdir()
    entries = []
    for i in range(images.shape[1]):
        write_png(directory / f"images/{i}.png", (images[0, i, 0].numpy() * 255).round().astype(np.uint8))
        write_png(directory / f"labels/{i}.png", (labels[0, i, 0].numpy() * 255).astype(np.uint8))
        entries.append({"image": f"images/{i}.png", "label": f"labels/{i}.png"})
    (directory / "support.json").write_text(json.dumps({"name": "speed", "version": "1", "entries": entries}))
    write_png(directory / "query.png", (query[0, 0].numpy() * 255).round().astype(np.uint8))


def machine(binary):
    model, flags, family, number = "unknown CPU", set(), "?", "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("cpu family"):
            family = line.split(":", 1)[1].strip()
        if line.startswith("model\t"):
            number = line.split(":", 1)[1].strip()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16") if f in flags]
    version = subprocess.run([binary, "version"], check=True, capture_output=True, text=True).stdout
    core = next((l for l in version.splitlines() if l.startswith("OpenBLAS core:")), "OpenBLAS core: ?")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    libraries = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    runtime = "shared Swift runtime" if "libswiftCore" in libraries else "Swift runtime linked in"
    return (f"CPU: {model} (family {family}, model {number}); ISA: {' '.join(isa) or 'no AVX2'}; {core}; "
            f"OPENBLAS_CORETYPE {'=' + coretype + ' (set)' if coretype else 'unset'}\n"
            f"binary: {binary} ({runtime}, {libraries.count(' => ')} shared libraries)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(ROOT / "Tests/SegModelTests/Fixtures/v1.weights.safetensors"))
    ap.add_argument("--sizes", default="1,8,16,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="also time PyTorch with the exact reductions")
    ap.add_argument("--onnx", action="store_true", help="also time ONNX Runtime running both exported networks")
    ap.add_argument("--segment", action="store_true", help="also time whole `segment` processes")
    ap.add_argument("--all", action="store_true", help="--fast --onnx --segment")
    packaged = ROOT / ".build-static/release/universeg-worker"
    ap.add_argument("--binary", default=str(packaged if packaged.exists() else ROOT / ".build/release/universeg-worker"),
                    help="default: the packaged build (.build-static) when present, else .build/release")
    args = ap.parse_args()
    if args.all:
        args.fast = args.onnx = args.segment = True
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)

    reference, meta = load_model(args.weights, fast=False)
    fast = load_model(args.weights, fast=True)[0] if args.fast or args.onnx else None
    size = int(meta.get("input_size", "128"))
    g = torch.Generator().manual_seed(0)
    nmax = max(sizes)
    # Inputs on the 8-bit grid, so that the PNG files of --segment hold exactly the same values.
    query = (torch.rand(1, 1, size, size, generator=g) * 255).round() / 255
    images = (torch.rand(1, nmax, 1, size, size, generator=g) * 255).round() / 255
    labels = (torch.rand(1, nmax, 1, size, size, generator=g) > 0.5).float()

    rows = {n: {} for n in sizes}
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "inputs.safetensors"
        save_safetensors(inputs, {"query": query.numpy(), "support_images": images[0].numpy(),
                                  "support_labels": labels[0].numpy()}, {"format": "universeg-case"})

        def bench(sizes_text, repeats, logits=None):
            command = [args.binary, "bench", "--weights", args.weights, "--inputs", str(inputs),
                       "--sizes", sizes_text, "--threads", str(args.threads), "--repeats", str(repeats), "--json"]
            if logits:
                command += ["--save-logits", str(logits)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            return [json.loads(line) for line in out.splitlines()]

        for r in bench(args.sizes, 1, logits=tmp / "logits"):
            rows[r["n"]]["convolution"] = r.get("convolution", "?")
        ours = {n: np.load(tmp / f"logits/logits-n{n}.npy") for n in sizes}

        def check(name, n, logits):
            diff = float(np.abs(logits - ours[n]).max())
            worst[name] = max(worst.get(name, 0.0), diff)

        # Every peer as a callable that runs one timed pass (set up and warmed up here).
        timed = {n: {} for n in sizes}
        for n in sizes:
            for key, model, name in (("torch_ms", reference, "torch reference"), ("torch_fast_ms", fast, "torch reduced")):
                if key == "torch_fast_ms" and not args.fast:
                    continue
                check(name, n, torch_logits(model, query, images, labels, n))
                batch = (query, images[:, :n], labels[:, :n])

                def forward(model=model, batch=batch):
                    with torch.no_grad():
                        model(*batch)
                timed[n][key] = forward
            if args.onnx:
                for key, model in (("ort_ref_ms", reference), ("ort_fast_ms", fast)):
                    session, feed = onnx_session(model, query, images, labels, n, args.threads, tmp / f"{key}-{n}.onnx")
                    check("onnxruntime " + ("reference" if key == "ort_ref_ms" else "reduced"), n,
                          session.run(None, feed)[0].reshape(size, size))
                    timed[n][key] = lambda session=session, feed=feed: session.run(None, feed)
            if args.segment:
                # A support set of exactly the N pairs the peers get, as PNG files: the process
                # decodes what it uses, as it would for a user's N-entry support set.
                support = tmp / f"support-{n}"
                write_support(support, query, images[:, :n], labels[:, :n])
                command = [args.binary, "segment", "--weights", args.weights, "--support", str(support),
                           "--threads", str(args.threads), "--out", str(tmp / "masks"), str(support / "query.png")]
                timed[n]["segment_ms"] = lambda command=command: subprocess.run(command, check=True, capture_output=True)
            for run in timed[n].values():
                run()  # warm-up
        # Rounds: each round times one pass of every peer at every N, in an order rotated from
        # round to round, so that all of them sample the same periods of a busy machine. `bench`
        # is one process per round: the median of three passes after its own warm-up (the pass
        # right after the warm-up is often slower than the steady state the figure stands for).
        samples = {n: {} for n in sizes}
        for round_index in range(args.repeats):
            for n in sizes:
                keys = list(timed[n]) + ["swift_ms"]
                shift = round_index % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    if key == "swift_ms":
                        value = bench(str(n), 3)[0]["median_ms"]
                    else:
                        t0 = time.perf_counter()
                        timed[n][key]()
                        value = (time.perf_counter() - t0) * 1e3
                    samples[n].setdefault(key, []).append(value)
        for n in sizes:
            for key, values in samples[n].items():
                rows[n][key] = statistics.median(values)

    print(machine(args.binary))
    print(f"torch {torch.__version__}" + (f", onnxruntime {__import__('onnxruntime').__version__}" if args.onnx else "")
          + f"; {args.threads} threads; weights {Path(args.weights).name}, {size}x{size}; median of {args.repeats}; "
          + f"this engine's 3x3 convolutions: {rows[sizes[0]].get('convolution')}")
    columns = [("torch_ms", "torch ref"), ("torch_fast_ms", "torch reduced"), ("ort_ref_ms", "ORT ref"),
               ("ort_fast_ms", "ORT reduced"), ("swift_ms", "bench"), ("segment_ms", "segment")]
    columns = [(k, t) for k, t in columns if k in rows[sizes[0]]]
    print("    N" + "".join(f"  {t:>13}" for _, t in columns) + "  (ms)")
    for n in sizes:
        print(f"{n:5d}" + "".join(f"  {rows[n][k]:13.1f}" for k, _ in columns))
    print("ratios (peer ms / ours ms):")
    for n in sizes:
        r = rows[n]
        parts = [f"bench vs torch ref {r['torch_ms'] / r['swift_ms']:.2f}x"]
        if "segment_ms" in r:
            parts.append(f"segment vs torch ref {r['torch_ms'] / r['segment_ms']:.2f}x")
        for key, name in (("torch_fast_ms", "torch reduced"), ("ort_fast_ms", "ORT reduced"), ("ort_ref_ms", "ORT ref")):
            if key in r:
                parts.append(f"bench vs {name} {r[key] / r['swift_ms']:.2f}x")
                if "segment_ms" in r:
                    parts.append(f"segment vs {name} {r[key] / r['segment_ms']:.2f}x")
        print(f"  N={n}: " + ", ".join(parts))
    print("logits, max |peer - this engine| over all N: "
          + ", ".join(f"{name} {value:.2e}" for name, value in worst.items()))


if __name__ == "__main__":
    main()
