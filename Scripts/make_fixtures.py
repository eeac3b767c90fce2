#!/usr/bin/env python3
"""Generate the Swift engine's reference fixtures (Tests/SegModelTests/Fixtures/).

Usage:
    python3 Scripts/make_fixtures.py [--out Tests/SegModelTests/Fixtures] [--seed 20240601]

Writes:
  small.weights.safetensors  encoder 8,8,8,8 / decoder 8,8,8, input_size 64, F32, seeded
                             kaiming-normal weights (biases drawn small and non-zero so that
                             bias handling is exercised; see --zero-bias).
  small.case.safetensors     query [1,1,64,64], support_images [8,1,64,64],
                             support_labels [8,1,64,64] (F32) and reference logits
                             logits_n1, logits_n3, logits_n8 [1,1,64,64] (F32), computed on the
                             FIRST n support entries.
  v1.weights.safetensors     v1 architecture (64 widths, input_size 128), seeded kaiming weights
                             stored as F16.
  v1.case.safetensors        query [1,1,128,128], support_images/labels [16,1,128,128] stored as
                             F16, logits_n1, logits_n4, logits_n16 (F32).

Every reference is computed with UniverSegReference (the literal pairwise algorithm) in
float64, from the weights and inputs exactly as stored (F16 values are cast up), and then
rounded to F32; so the fixture's only error is that final rounding.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import (UniverSegFast, UniverSegReference, architecture_metadata,  # noqa: E402
                             kaiming_init_, load_safetensors, parameter_count, save_safetensors)

REPO = Path(__file__).resolve().parent.parent


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """White noise low-pass filtered with a Gaussian (periodic, via FFT), scaled to unit std."""
    noise = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    out = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    return (out - out.mean()) / (out.std() + 1e-12)


def make_examples(rng: np.random.Generator, count: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Blob-like binary labels (thresholded smoothed noise) and smooth textured images in
    [0, 1] whose intensity depends on the label, so the set is a coherent toy task."""
    images = np.empty((count, 1, size, size))
    labels = np.empty((count, 1, size, size))
    for k in range(count):
        shape = smooth_noise(rng, size, sigma=size / 10)
        label = (shape > 0.6).astype(np.float64)
        texture = smooth_noise(rng, size, sigma=1.5)
        image = 0.35 + 0.3 * label + 0.12 * texture + 0.05 * rng.standard_normal((size, size))
        images[k, 0] = np.clip(image, 0.0, 1.0)
        labels[k, 0] = label
    return images, labels


def perturb_biases(model: UniverSegReference, seed: int, scale: float = 0.05) -> None:
    """Replace the (zero) kaiming biases by small random values so tests cover the bias path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_((torch.randn(p.shape, generator=g, dtype=torch.float64) * scale).to(p.dtype))


def reference_logits(weights: Dict[str, np.ndarray], enc: Sequence[int], dec: Sequence[int],
                     query: np.ndarray, sup_img: np.ndarray, sup_lab: np.ndarray,
                     ns: Sequence[int]) -> Dict[str, np.ndarray]:
    """float64 reference logits for the first n support entries, for each n; also checks the
    fast variant agrees in float64."""
    ref = UniverSegReference(enc, dec).double()
    ref.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()})
    fast = UniverSegFast(enc, dec).double()
    fast.load_state_dict(ref.state_dict())
    q = torch.from_numpy(query.astype(np.float64))
    si = torch.from_numpy(sup_img.astype(np.float64)).unsqueeze(0)
    sl = torch.from_numpy(sup_lab.astype(np.float64)).unsqueeze(0)
    ref32 = UniverSegReference(enc, dec).float()
    ref32.load_state_dict(ref.state_dict())
    fast32 = UniverSegFast(enc, dec).float()
    fast32.load_state_dict(ref.state_dict())
    out = {}
    with torch.no_grad():
        for n in ns:
            t0 = time.time()
            a = ref(q, si[:, :n], sl[:, :n])
            b = fast(q, si[:, :n], sl[:, :n])
            diff = (a - b).abs().max().item()
            assert diff < 1e-10, diff
            # How far float32 evaluations land from the float64 reference (tolerance guide).
            a32 = ref32(q.float(), si[:, :n].float(), sl[:, :n].float()).double()
            b32 = fast32(q.float(), si[:, :n].float(), sl[:, :n].float()).double()
            out[f"logits_n{n}"] = a.numpy().astype(np.float32)
            print(f"  n={n:2d}: max|logit| {a.abs().max().item():.4f}  "
                  f"mean {a.mean().item():+.4f}  ref-vs-fast(f64) {diff:.2e}  "
                  f"f32 ref {(a32 - a).abs().max().item():.2e} "
                  f"f32 fast {(b32 - a).abs().max().item():.2e}  "
                  f"({time.time() - t0:.1f} s)")
    return out


def build_case(out: Path, tag: str, enc: Sequence[int], dec: Sequence[int], size: int,
               n_support: int, ns: Sequence[int], weight_dtype: type, input_dtype: type,
               seed: int, zero_bias: bool) -> Dict[str, float]:
    print(f"{tag}: encoder {enc} decoder {dec} size {size} support {n_support} "
          f"weights {np.dtype(weight_dtype).name} inputs {np.dtype(input_dtype).name}")
    model = kaiming_init_(UniverSegReference(enc, dec).double(), seed=seed)
    if not zero_bias:
        perturb_biases(model, seed + 1)
    weights = {k: v.numpy().astype(weight_dtype) for k, v in model.state_dict().items()}
    meta = architecture_metadata(enc, dec, size, name=f"fixture-{tag}",
                                 description=f"seeded random kaiming weights (seed {seed}) for "
                                             "engine tests; not trained",
                                 parameters=str(parameter_count(model)))
    save_safetensors(out / f"{tag}.weights.safetensors", weights, meta)

    rng = np.random.default_rng(seed + 2)
    images, labels = make_examples(rng, n_support + 1, size)
    query = images[:1].astype(input_dtype)                  # [1,1,S,S]
    sup_img = images[1:].astype(input_dtype)                # [N,1,S,S]
    sup_lab = labels[1:].astype(input_dtype)
    logits = reference_logits(weights, enc, dec, query, sup_img, sup_lab, ns)
    tensors = {"query": query, "support_images": sup_img, "support_labels": sup_lab, **logits}
    case_meta = {"format": "universeg-case", "weights": f"{tag}.weights.safetensors",
                 "support_counts": ",".join(str(n) for n in ns),
                 "note": "logits_nK use the first K support entries; computed in float64 with "
                         "the literal (pairwise) algorithm, stored as F32",
                 "seed": str(seed)}
    save_safetensors(out / f"{tag}.case.safetensors", tensors, case_meta)
    # Round-trip check.
    back, _ = load_safetensors(out / f"{tag}.case.safetensors")
    assert all(np.array_equal(back[k], v) for k, v in tensors.items())
    return {k: float(np.abs(v).max()) for k, v in logits.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "Tests/SegModelTests/Fixtures")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--zero-bias", action="store_true",
                    help="keep the kaiming init's zero biases (default: small random biases)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    summary["small"] = build_case(args.out, "small", (8, 8, 8, 8), (8, 8, 8), 64, 8, (1, 3, 8),
                                  np.float32, np.float32, args.seed, args.zero_bias)
    summary["v1"] = build_case(args.out, "v1", (64, 64, 64, 64), (64, 64, 64), 128, 16,
                               (1, 4, 16), np.float16, np.float16, args.seed + 100,
                               args.zero_bias)
    total = sum(p.stat().st_size for p in args.out.glob("*.safetensors"))
    for p in sorted(args.out.glob("*.safetensors")):
        print(f"{p.name}: {p.stat().st_size} bytes")
    print(f"total {total} bytes")
    assert total < 10_000_000
    for tag, d in summary.items():
        print(tag, ", ".join(f"max|{k}|={v:.4f}" for k, v in d.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
