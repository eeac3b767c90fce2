#!/usr/bin/env python3
"""Export a training checkpoint to the worker's safetensors format.

Usage:
    python3 Scripts/export_weights.py RUN_DIR_OR_CHECKPOINT [OUT.safetensors]
        [--which best|latest] [--dtype f32|f16] [--input-size S] [--name NAME] [--description TEXT]

RUN_DIR_OR_CHECKPOINT is a run directory of Scripts/train.py (then ``--which`` picks best.pt,
the best mean validation Dice, or checkpoint.pt, the latest) or a .pt checkpoint file. OUT
defaults to Config/models/universeg-cpu.safetensors in the repository. The output holds the
parameters under the authors' names plus the metadata the Swift worker reads (format,
encoder_widths, decoder_widths, input_size) and provenance (name, description, training step,
examples seen, training minutes, training input size, validation Dice, dtype).
``--input-size`` sets the size the worker resizes images to (default: the training input size).
The network is fully convolutional, so it may differ from the training size; the shipped
weights, trained at 64x64, are run at 128x128, which scored higher on held-out wbc-cv (see
Config/models/MODEL_CARD.md).
The file must stay under 10 MB to ship inside the project.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import (UniverSegFast, UniverSegReference, load_model,  # noqa: E402
                             parameter_count, save_model)

REPO = Path(__file__).resolve().parent.parent
MAX_BYTES = 10_000_000


def resolve_checkpoint(src: Path, which: str) -> Path:
    if src.is_dir():
        path = src / ("best.pt" if which == "best" else "checkpoint.pt")
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    return src


def stepping_minutes(run_dir: Path, upto_step: int) -> Optional[float]:
    """Minutes spent in training steps up to ``upto_step``, from the run's log (each "train"
    record carries the mean wall seconds per step of the steps since the previous record).
    Unlike the checkpoint's wall time it leaves out evaluations, but not time the run was
    stopped (SIGSTOP): for such runs pass the stepping minutes with --phase-minutes."""
    log = run_dir / "log.jsonl"
    if not log.exists():
        return None
    total, prev = 0.0, 0
    for line in open(log):
        rec = json.loads(line)
        if rec.get("kind") != "train" or rec["step"] > upto_step:
            continue
        total += max(rec["step"] - prev, 0) * rec["s_per_step"]
        prev = rec["step"]
    return total / 60.0


def phase_minutes(run_dir: Path, upto_step: int, overrides: Dict[str, float]) -> Optional[float]:
    """The stepping minutes of a run: from --phase-minutes if given for it, else from its log."""
    if run_dir.name in overrides:
        return overrides[run_dir.name]
    return stepping_minutes(run_dir, upto_step)


def averaged_steps(ck: Dict) -> Optional[List[str]]:
    """The steps an average (Scripts/average_checkpoints.py) was made of, or None."""
    if "averaged_from" not in ck:
        return None
    return [a.rsplit("(step ", 1)[-1].rstrip(")") for a in ck["averaged_from"]]


INIT_FROM = re.compile(r"^(?P<path>.+) \(step (?P<step>\d+), (?P<examples>\d+) examples\)$")


def provenance(ckpt_path: Path, ck: Dict, minutes: Optional[float],
               minutes_override: Dict[str, float]) -> str:
    """One sentence on the training phases behind a checkpoint: this run's stepping minutes,
    then each run it was initialised from (train.py --init-from), as far as their logs exist."""
    run_dir, cfg = ckpt_path.parent, ck["config"]
    steps = averaged_steps(ck)
    parts = [f"this phase ({run_dir.name}): {ck['step']} steps"
             + (f", {minutes:.1f} min of stepping" if minutes is not None else "")
             + f" ({ck['wall_s'] / 60:.1f} min wall)"
             + (f", weights averaged over steps {', '.join(steps)}" if steps else "")]
    seen = {run_dir.resolve()}
    while cfg.get("init_from"):
        m = INIT_FROM.match(cfg["init_from"])
        if m is None:
            # Shipped weights (.safetensors): their own provenance note, kept by train.py.
            note = cfg.get("init_from_note")
            parts.append(f"initialised from {cfg['init_from']}" + (f", whose training was: {note}" if note else ""))
            break
        parent = Path(m["path"]).parent
        if parent.resolve() in seen:
            break
        seen.add(parent.resolve())
        pm = phase_minutes(parent, int(m["step"]), minutes_override)
        parts.append(f"initialised from {parent.name} ({m['step']} steps"
                     + (f", {pm:.1f} min" if pm is not None else "") + ")")
        cfg_path = parent / "config.json"
        if not cfg_path.exists():
            break
        cfg = json.load(open(cfg_path))
    return "; ".join(parts)


def training_data(cfg: Dict) -> str:
    """The datasets a run trained on: those of its data directory with 128/images, less its
    exclusions (the held-out suite among them). Runs initialised from shipped weights also carry
    what those weights saw (their own metadata keeps it)."""
    root = Path(cfg.get("data_dir", ""))
    excluded = sorted(cfg.get("exclude", []))
    used = sorted(p.name for p in root.iterdir()
                  if p.is_dir() and (p / "128" / "images").is_dir() and p.name not in excluded) \
        if root.is_dir() else []
    return ("synthetic tasks + " + (", ".join(used) if used else f"the datasets of {root}")
            + f" (held out: {', '.join(excluded)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="run directory or checkpoint .pt")
    ap.add_argument("output", type=Path, nargs="?",
                    default=REPO / "Config" / "models" / "universeg-cpu.safetensors")
    ap.add_argument("--which", choices=("best", "latest"), default="best")
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--input-size", type=int, default=None,
                    help="inference input size stored in the metadata (default: the training size)")
    ap.add_argument("--name", default="universeg-cpu")
    ap.add_argument("--description", default="UniverSeg trained on CPU by the universeg-worker "
                    "project (Scripts/train.py); research use only, not for diagnosis")
    ap.add_argument("--phase-minutes", action="append", default=[], metavar="RUN=MINUTES",
                    help="stepping minutes of a run (this one or one it was initialised from), "
                         "replacing the sum from its log; for runs that were paused (SIGSTOP), "
                         "whose logged per-step wall times include the pause")
    args = ap.parse_args()
    minutes_override: Dict[str, float] = {}
    for item in args.phase_minutes:
        name, _, value = item.partition("=")
        try:
            minutes_override[name] = float(value)
        except ValueError:
            print(f"error: --phase-minutes {item!r}: expected RUN=MINUTES", file=sys.stderr)
            return 1

    ckpt_path = resolve_checkpoint(args.source, args.which)
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    model = UniverSegReference(cfg["encoder_widths"], cfg["decoder_widths"])
    model.load_state_dict(ck["model"], strict=True)
    val = None
    log = ckpt_path.parent / "log.jsonl"
    if "validation" in ck:                  # an average (Scripts/average_checkpoints.py)
        val = ck["validation"]["mean"]
    elif log.exists():
        for line in open(log):
            rec = json.loads(line)
            if rec.get("kind") == "eval" and rec["step"] == ck["step"]:
                val = rec["dice"]["mean"]
    minutes = phase_minutes(ckpt_path.parent, ck["step"], minutes_override)
    extra = {
        "name": args.name, "description": args.description,
        "training_step": str(ck["step"]), "training_examples": str(ck["examples"]),
        "training_minutes": f"{minutes if minutes is not None else ck['wall_s'] / 60:.1f}",
        "training_note": provenance(ckpt_path, ck, minutes, minutes_override),
        "training_input_size": str(cfg["input_size"]),
        "training_support_size": "-".join(str(s) for s in cfg["support"]),
        "training_data": training_data(cfg),
        "parameters": str(parameter_count(model)), "storage_dtype": args.dtype.upper(),
        "checkpoint": ckpt_path.name,
    }
    if averaged_steps(ck):
        extra["averaged_steps"] = ",".join(averaged_steps(ck))
    if val is not None:
        extra["validation_dice_mean"] = f"{val:.2f}"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    input_size = args.input_size or cfg["input_size"]
    divisor = 2 ** (len(cfg["encoder_widths"]) - 1)  # the encoder halves the size at each level
    if input_size < divisor or input_size % divisor != 0:
        print(f"error: --input-size {input_size}: must be a positive multiple of {divisor}", file=sys.stderr)
        return 1
    meta = save_model(args.output, model, input_size=input_size, dtype=args.dtype, **extra)
    size = args.output.stat().st_size
    if size > MAX_BYTES:
        print(f"error: {args.output} is {size} bytes, over the {MAX_BYTES} byte limit; "
              "use --dtype f16 or a narrower model", file=sys.stderr)
        return 1
    # Check: the written file reloads and reproduces the checkpoint's outputs.
    loaded, _ = load_model(args.output, fast=True)
    ref = UniverSegFast(cfg["encoder_widths"], cfg["decoder_widths"])
    ref.load_state_dict(ck["model"])
    s = cfg["input_size"]
    g = torch.Generator().manual_seed(0)
    q, si = torch.rand(1, 1, s, s, generator=g), torch.rand(1, 3, 1, s, s, generator=g)
    sl = (torch.rand(1, 3, 1, s, s, generator=g) > 0.5).float()
    with torch.no_grad():
        diff = (loaded(q, si, sl) - ref(q, si, sl)).abs().max().item()
    print(f"wrote {args.output} ({size} bytes) from {ckpt_path} (step {ck['step']}); "
          f"max |logit diff| vs checkpoint {diff:.2e}")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
