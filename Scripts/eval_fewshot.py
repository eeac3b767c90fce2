#!/usr/bin/env python3
"""Few-shot evaluation in Python (cross-check for the Swift `universeg-worker eval`).

Usage:
    python3 Scripts/eval_fewshot.py --weights W.safetensors --dataset DIR --label NAME
        [--support-size 1,4,16,64] [--ensemble 1,10] [--seed 0] [--threads 1] [--json OUT]

DIR has the layout DATASET/128 (images/ID.png, labels/NAME/ID.png). Protocol (issue 3): a
seeded split puts 70% of the IDs in the support pool and 30% in the test queries; for each test
image and each N, K support sets of size N are drawn from the pool (for K in the ensemble list,
the first K of the drawn sets are used, so K=1 is a subset of K=10). Images and support labels
are prepared as the worker does (resize to the model's input_size, antialiased bilinear, then
per-image min-max for images; nearest-neighbour for labels); the ensemble-averaged
probability is resized back to the label's resolution (bilinear) and thresholded at 0.5; Dice
is computed against the full-resolution label. Two non-learned baselines on the same support
sets, at full resolution: the prior mask (mean support label > 0.5) and an intensity
classifier (foreground frequency per intensity bin, 32 bins, > 0.5). Reported: mean Dice in
percent with a bootstrap standard deviation over test images.

This script only measures; it is not used to choose checkpoints or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import load_model  # noqa: E402
from universeg_data import minmax_per_image, resize_labels, resize_stack  # noqa: E402


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    p, t = pred.astype(bool), target.astype(bool)
    den = p.sum() + t.sum()
    return 1.0 if den == 0 else 2.0 * np.logical_and(p, t).sum() / den


def bootstrap_std(values: np.ndarray, rng: np.random.Generator, n: int = 1000) -> float:
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return float(values[idx].mean(axis=1).std())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True,
                    help="folder with images/ and labels/ (e.g. ../shared/datasets/wbc-cv/128)")
    ap.add_argument("--label", required=True)
    ap.add_argument("--support-size", default="1,4,16,64")
    ap.add_argument("--ensemble", default="1,10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from PIL import Image

    model, meta = load_model(args.weights, fast=True)
    model.eval()
    size = int(meta.get("input_size", 128))
    ids = sorted(p.stem for p in (args.dataset / "images").glob("*.png"))
    imgs = np.stack([np.asarray(Image.open(args.dataset / "images" / f"{i}.png").convert("L"))
                     for i in ids]).astype(np.float32) / 255.0
    labs = np.stack([np.asarray(Image.open(args.dataset / "labels" / args.label / f"{i}.png")
                                .convert("L")) for i in ids]) > 127
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(ids))
    n_pool = int(round(0.7 * len(ids)))
    pool, test = perm[:n_pool], perm[n_pool:]

    # Model inputs prepared like the worker (Sources/SegIO/Preprocess.swift) and like training
    # (universeg_data.load_real_tasks): antialiased bilinear resize then per-image min-max for
    # images, nearest-neighbour resize for the binary labels.
    x_model = minmax_per_image(resize_stack(torch.from_numpy(imgs).unsqueeze(1), size))
    y_model = resize_labels(torch.from_numpy(labs.astype(np.float32)).unsqueeze(1), size)
    ns = [int(n) for n in args.support_size.split(",")]
    ks = [int(k) for k in args.ensemble.split(",")]
    kmax = max(ks)
    scores: Dict[str, List[float]] = {}
    t_model = 0.0
    n_forward = 0
    for n in ns:
        n_eff = min(n, len(pool))
        for qi in test:
            sets = np.stack([rng.choice(pool, size=n_eff, replace=False) for _ in range(kmax)])
            t0 = time.time()
            with torch.no_grad():
                logits = model(x_model[qi:qi + 1].expand(kmax, -1, -1, -1),
                               x_model[torch.from_numpy(sets)], y_model[torch.from_numpy(sets)])
            t_model += time.time() - t0
            n_forward += 1
            prob = torch.sigmoid(logits)                       # [kmax,1,S,S]
            if prob.shape[-1] != labs.shape[-1]:
                prob = F.interpolate(prob, size=labs.shape[-2:], mode="bilinear",
                                     align_corners=False)
            prob = prob[:, 0].numpy()
            for k in ks:
                pred = prob[:k].mean(axis=0) > 0.5
                scores.setdefault(f"universeg N={n} K={k}", []).append(dice(pred, labs[qi]))
            # baselines on the first K=1 set and on all kmax sets (averaged like the model)
            for k in ks:
                prior = np.mean([labs[s].mean(axis=0) for s in sets[:k]], axis=0) > 0.5
                bins = 32
                votes = []
                for s in sets[:k]:
                    si = np.clip((imgs[s] * bins).astype(int), 0, bins - 1)
                    fg = np.bincount(si.ravel(), weights=labs[s].ravel(), minlength=bins)
                    tot = np.bincount(si.ravel(), minlength=bins)
                    freq = fg / np.maximum(tot, 1)
                    votes.append(freq[np.clip((imgs[qi] * bins).astype(int), 0, bins - 1)])
                inten = np.mean(votes, axis=0) > 0.5
                scores.setdefault(f"prior N={n} K={k}", []).append(dice(prior, labs[qi]))
                scores.setdefault(f"intensity N={n} K={k}", []).append(dice(inten, labs[qi]))
    brng = np.random.default_rng(12345)
    table = {}
    print(f"{args.dataset} label={args.label} weights={args.weights.name} input={size} "
          f"pool={len(pool)} test={len(test)} seed={args.seed}")
    print(f"{'N':>3} {'K':>3}  {'UniverSeg':>12}  {'prior mask':>12}  {'intensity':>12}")
    for n in ns:
        for k in ks:
            row = {}
            for method in ("universeg", "prior", "intensity"):
                v = np.array(scores[f"{method} N={n} K={k}"]) * 100
                row[method] = (float(v.mean()), bootstrap_std(v, brng))
            table[f"N={n} K={k}"] = row
            print(f"{n:>3} {k:>3}  " + "  ".join(f"{m:5.1f} ± {s:4.1f}" for m, s in row.values()))
    print(f"model time per query (all {kmax} sets batched): {t_model / max(1, n_forward):.2f} s")
    if args.json:
        json.dump({"dataset": str(args.dataset), "label": args.label, "seed": args.seed,
                   "weights": str(args.weights), "input_size": size, "table": table},
                  open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
