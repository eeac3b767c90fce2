#!/usr/bin/env python3
"""Average the model weights of several checkpoints of one run and score the average on the run's
training-side validation (the same episodes train.py evaluates; wbc-cv is never read).

Weight averaging over the low-learning-rate tail of a run (Izmailov et al. 2018, "Averaging
weights leads to wider optima and better generalization") often generalises better than the last
checkpoint. The network has no batch-norm statistics, so the average needs no re-estimation.

Example:
    python3 Scripts/average_checkpoints.py /work/universeg-runs/cpu-w32-s64-v8ft \\
        --steps 1000 1250 1500 latest --output /work/universeg-runs/cpu-w32-s64-v8ft/average.pt

The output is a checkpoint that Scripts/export_weights.py accepts (model, step, examples,
wall_s, config of the last input) plus "averaged_from" (the inputs) and "validation" (the Dice
per validation task and their mean). It also prints the validation of each input for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import UniverSegFast  # noqa: E402
from universeg_data import load_real_tasks, HELD_OUT  # noqa: E402
from train import build_validation, evaluate  # noqa: E402


def resolve(run_dir: Path, step: str) -> Path:
    if step == "latest":
        return run_dir / "checkpoint.pt"
    if not step.isdigit():
        raise SystemExit(f"error: --steps takes step numbers or 'latest', not {step!r}")
    path = run_dir / "snapshots" / f"step{int(step):06d}.pt"
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist")
    return path


def average_state_dicts(states: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise SystemExit("error: the checkpoints have different parameter names")
    out = {}
    for k in keys:
        stacked = torch.stack([s[k].double() for s in states])
        out[k] = stacked.mean(dim=0).to(states[0][k].dtype)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--steps", nargs="+", required=True,
                    help="snapshot steps to average, or 'latest' for checkpoint.pt")
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    paths = [resolve(args.run_dir, s) for s in args.steps]
    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    steps = [ck["step"] for ck in cks]
    if len(set(steps)) != len(steps):
        raise SystemExit(f"error: the same step appears twice: {steps}")
    cfg = cks[-1]["config"]
    for ck in cks:
        arch = (ck["config"]["encoder_widths"], ck["config"]["decoder_widths"])
        if arch != (cfg["encoder_widths"], cfg["decoder_widths"]):
            raise SystemExit("error: the checkpoints have different architectures")

    real = load_real_tasks(Path(cfg["data_dir"]), cfg["input_size"], cfg["split_seed"],
                           exclude=sorted(set(cfg["exclude"]) | set(HELD_OUT)))
    assert not any(t.name.startswith("wbc-cv") for t in real)
    episodes = build_validation(real, cfg["input_size"], cfg["val_support"], cfg["split_seed"])

    def score(state: Dict[str, torch.Tensor]) -> Dict[str, float]:
        model = UniverSegFast(cfg["encoder_widths"], cfg["decoder_widths"])
        model.load_state_dict(state, strict=True)
        dice, _ = evaluate(model, episodes, "cpu")
        return dice

    for p, ck in zip(paths, cks):
        d = score(ck["model"])
        print(f"step {ck['step']:>6} ({p.name}): validation mean {d['mean']:.2f}", flush=True)
    avg = average_state_dicts([ck["model"] for ck in cks])
    dice = score(avg)
    print(f"average of steps {steps}: validation mean {dice['mean']:.2f}  "
          + json.dumps({k: round(v, 1) for k, v in dice.items()}), flush=True)

    last = max(cks, key=lambda ck: ck["step"])
    out = {"model": avg, "step": last["step"], "examples": last["examples"],
           "wall_s": last["wall_s"], "config": cfg,
           "averaged_from": [f"{p} (step {ck['step']})" for p, ck in zip(paths, cks)],
           "validation": dice}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    torch.save(out, tmp)
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
