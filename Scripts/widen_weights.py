#!/usr/bin/env python3
"""Widen a UniverSeg weights file without changing the function it computes (Net2WiderNet).

Every hidden feature channel c of width w becomes channels c and c + w of width 2w (or,
generally, channel j of the new width copies old channel j mod w): each convolution's output
filters and biases are repeated, and each convolution reading widened channels divides its
weight on a copied channel by the number of copies. The network's operations between
convolutions (LeakyReLU, the mean over the support set, max pooling, bilinear upsampling,
concatenation) act channel by channel, so the widened network computes the same logits up to
float rounding; the script checks that on random inputs before it writes anything.

Copies that start equal get equal gradients and stay equal, so ``--noise`` (relative to each
tensor's standard deviation) perturbs the widened weights, independently per copy; the check
then reports how far the logits moved.

    python3 Scripts/widen_weights.py Config/models/universeg-cpu.safetensors --width 64 \
        --output /tmp/widened.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import (UniverSegFast, architecture_metadata, infer_widths,  # noqa: E402
                             load_safetensors, save_safetensors)


def channel_map(old: int, new: int) -> np.ndarray:
    """new channel j -> old channel j mod old (every old channel copied new // old times)."""
    if new < old or new % old:
        raise ValueError(f"a width of {old} widens only to a multiple of it, not {new}")
    return np.arange(new) % old


def input_map(groups: Sequence[tuple]) -> tuple:
    """Concatenated input groups [(old, new), ...] -> (old index per new input channel, the
    number of copies of each one's old channel)."""
    index: List[int] = []
    copies: List[int] = []
    base = 0
    for old, new in groups:
        m = channel_map(old, new)
        index.extend(base + m)
        copies.extend([new // old] * new)
        base += old
    return np.asarray(index), np.asarray(copies, dtype=np.float64)


def widen(tensors: Dict[str, np.ndarray], enc_old: Sequence[int], dec_old: Sequence[int],
          enc_new: Sequence[int], dec_new: Sequence[int]) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}

    def conv(key: str, in_groups: Sequence[tuple], out_old: int, out_new: int) -> None:
        w = tensors[f"{key}.weight"].astype(np.float64)
        b = tensors[f"{key}.bias"].astype(np.float64)
        oi = channel_map(out_old, out_new)
        ii, copies = input_map(in_groups)
        w = w[oi][:, ii] / copies[None, :, None, None]
        out[f"{key}.weight"] = w
        out[f"{key}.bias"] = b[oi]

    cu, cv = (1, 1), (2, 2)   # the query; the support image and label
    skips = []
    for i, (wo, wn) in enumerate(zip(enc_old, enc_new)):
        p = f"enc_blocks.{i}"
        conv(f"{p}.cross.cross_conv", [cu, cv], wo, wn)
        conv(f"{p}.target.vmapped.conv", [(wo, wn)], wo, wn)
        conv(f"{p}.support.vmapped.conv", [(wo, wn)], wo, wn)
        cu = cv = (wo, wn)
        skips.append((wo, wn))
    skips = skips[:-1][::-1]
    for j, ((wo, wn), skip) in enumerate(zip(zip(dec_old, dec_new), skips)):
        p = f"dec_blocks.{j}"
        conv(f"{p}.cross.cross_conv", [cu, skip, cv, skip], wo, wn)
        conv(f"{p}.target.vmapped.conv", [(wo, wn)], wo, wn)
        conv(f"{p}.support.vmapped.conv", [(wo, wn)], wo, wn)
        cu = cv = (wo, wn)
    conv("out_conv.conv", [cu], 1, 1)
    missing = set(tensors) - set(out)
    if missing:
        raise ValueError(f"unexpected tensors: {sorted(missing)}")
    return out


def model_of(tensors: Dict[str, np.ndarray]) -> UniverSegFast:
    enc, dec = infer_widths({k: v.shape for k, v in tensors.items()})
    model = UniverSegFast(enc, dec).double()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64))
                           for k, v in tensors.items()})
    return model.eval()


def max_logit_difference(a: UniverSegFast, b: UniverSegFast, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(2, 1, 64, 64, generator=g, dtype=torch.float64)
    si = torch.rand(2, 5, 1, 64, 64, generator=g, dtype=torch.float64)
    sl = (torch.rand(2, 5, 1, 64, 64, generator=g, dtype=torch.float64) > 0.5).double()
    with torch.no_grad():
        la, lb = a(q, si, sl), b(q, si, sl)
    return float((la - lb).abs().max() / la.abs().max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--width", type=int, required=True, help="the new width of every block")
    ap.add_argument("--noise", type=float, default=0.01,
                    help="Gaussian noise per weight, as a fraction of its tensor's s.d.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()

    tensors, meta = load_safetensors(args.weights)
    enc, dec = infer_widths({k: v.shape for k, v in tensors.items()})
    enc_new, dec_new = [args.width] * len(enc), [args.width] * len(dec)
    wide = widen(tensors, enc, dec, enc_new, dec_new)
    exact = max_logit_difference(model_of(tensors), model_of(wide))
    if exact > 1e-9:
        print(f"error: the widened network differs (relative {exact:.3g})", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    noisy = {k: v + rng.standard_normal(v.shape) * args.noise * (v.std() if v.size > 1 else 0.0)
             for k, v in wide.items()}
    moved = max_logit_difference(model_of(tensors), model_of(noisy))
    extra = {k: v for k, v in meta.items()
             if k not in ("encoder_widths", "decoder_widths", "input_size", "format",
                          "parameter_count", "architecture")}
    extra["widened_from"] = (f"{args.weights.name} (widths {','.join(map(str, enc))} / "
                             f"{','.join(map(str, dec))}), noise {args.noise}, seed {args.seed}")
    new_meta = architecture_metadata(enc_new, dec_new, int(meta.get("input_size", 128)), **extra)
    save_safetensors(args.output, {k: v.astype(np.float32) for k, v in noisy.items()}, new_meta)
    print(f"widened {enc}/{dec} -> {enc_new}/{dec_new}: exact copy differs by {exact:.2e} "
          f"(relative max logit), with noise {args.noise}: {moved:.2e}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
