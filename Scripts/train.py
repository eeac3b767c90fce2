#!/usr/bin/env python3
"""Train UniverSeg on CPU (issue 3): synthetic + real tasks, Table 4 augmentations, soft Dice, Adam.

Example (the project's CPU run, one core, niced):
    OMP_NUM_THREADS=1 nohup nice -n 19 python3 Scripts/train.py --name cpu-w32-s64-v4 \\
        --encoder-widths 32,32,32,32 --decoder-widths 32,32,32 --input-size 64 --batch 4 \\
        --support 1,8 --lr 5e-4 --bce-weight 1.0 --aug-strength 0.5 --total-steps 8000 \\
        --seed 4 --threads 1 --eval-every 250 --ckpt-every 100 --snapshot-every 1000 \\
        --max-minutes 110 > /work/universeg-runs/cpu-w32-s64-v4.out 2>&1 &

A run lives in ``--run-dir`` (default ``/work/universeg-runs/<name>``, outside the repository):
    config.json        the run's configuration (architecture, sampler, optimiser)
    checkpoint.pt      latest checkpoint: model, optimiser, step, examples seen, wall time, RNG
    best.pt            the checkpoint with the best mean validation Dice so far
    snapshots/         checkpoint copies every --snapshot-every steps
    log.jsonl          one JSON object per line: {"kind": "train", step, examples, loss, lr,
                       wall_s, s_per_step} every --log-every steps, {"kind": "eval", ...} per
                       evaluation (validation Dice per task, N=16, no augmentation)
    loss_curve.png     training loss and validation Dice against steps (rewritten at each eval)

Rerunning the same command resumes from checkpoint.pt (architecture and sampler settings come
from config.json; --max-minutes and --max-steps apply to this invocation's budget / the total).
Every step's randomness is derived from (seed, step), so a resumed run draws exactly the tasks
and augmentations an uninterrupted run would have drawn.

wbc-cv is never read: it is the held-out evaluation dataset (see universeg_data.HELD_OUT).
Validation uses a seeded 20% split of the IDs of each training dataset and fixed synthetic tasks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import UniverSegFast, kaiming_init_, load_model, parameter_count  # noqa: E402
from universeg_data import (AugConfig, RealTask, SyntheticTasks, augment_sets, hard_dice,  # noqa: E402
                            load_real_tasks, sample_batch, soft_dice_loss, HELD_OUT)

REPO = Path(__file__).resolve().parent.parent
RUNS = Path("/work/universeg-runs")

# Settings that define a run (stored in config.json; fixed once a run exists).
RUN_KEYS = ("encoder_widths", "decoder_widths", "input_size", "batch", "support", "lr",
            "warmup", "lr_decay_start", "lr_min_factor", "total_steps", "p_synthetic",
            "aug_strength", "noise_var_max", "seed", "weight_decay", "grad_clip", "data_dir",
            "exclude", "val_support", "bce_weight", "split_seed")


def parse_ints(text: str) -> List[int]:
    return [int(t) for t in str(text).split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train UniverSeg on CPU (resumable).",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--name", default="cpu-w32-s64", help="run name")
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="run directory (default /work/universeg-runs/<name>)")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--exclude", default="", help="extra datasets to leave out (comma list); "
                    "wbc-cv is always left out")
    ap.add_argument("--encoder-widths", default="32,32,32,32")
    ap.add_argument("--decoder-widths", default="32,32,32")
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4, help="tasks per step")
    ap.add_argument("--support", default="4,12", help="support size range MIN,MAX per step")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    ap.add_argument("--total-steps", type=int, default=7000,
                    help="nominal length, for the cosine decay (training may stop earlier)")
    ap.add_argument("--lr-decay-start", type=float, default=0.5,
                    help="fraction of total-steps after which the lr decays (cosine)")
    ap.add_argument("--lr-min-factor", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--p-synthetic", type=float, default=0.5,
                    help="probability that a task is synthetic (else a real dataset/label)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a NEW run from the model weights of this checkpoint (optimiser "
                         "and step start fresh); ignored when the run directory already has a "
                         "checkpoint")
    ap.add_argument("--bce-weight", type=float, default=1.0,
                    help="weight of a binary cross-entropy term added to the soft Dice loss "
                         "(0 = the paper's pure soft Dice). Keep it > 0: with pure soft Dice and "
                         "this normalisation-free network the logits grow to hundreds within a "
                         "few dozen steps, the sigmoid saturates at 'everything foreground' and "
                         "the Dice gradient (times p(1-p)) vanishes, so training stalls at the "
                         "all-foreground Dice; BCE keeps gradients alive on wrong pixels")
    ap.add_argument("--aug-strength", type=float, default=1.0,
                    help="multiplies every Table 4 probability (0 = no augmentation)")
    ap.add_argument("--noise-var-max", type=float, default=0.01)
    ap.add_argument("--val-support", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1, help="seed of the per-step sampling")
    ap.add_argument("--split-seed", type=int, default=1,
                    help="seed of the train/validation split and of the validation episodes "
                         "(keep it when continuing from another run's weights)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this total step")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop cleanly after this many minutes of this invocation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--snapshot-every", type=int, default=1000)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--workers", type=int, default=0,
                    help="processes that draw and augment batches ahead of the training step "
                         "(0: the training process draws each batch itself). A batch depends only "
                         "on (seed, step), so the batches are the same either way")
    ap.add_argument("--prefetch", type=int, default=4,
                    help="with --workers: at most this many batches drawn ahead (bounds memory)")
    ap.add_argument("--augment-on-device", action="store_true",
                    help="draw tasks and examples in the workers but augment the batch on --device "
                         "(batched tensor operations; on a GPU the augmentation then costs the CPU "
                         "nothing). The augmentation's random numbers then come from the device")
    return ap


# --------------------------------------------------------------------------------------------
# Learning rate
# --------------------------------------------------------------------------------------------


def draw_batch(step: int, cfg: Dict, real: List[RealTask], synth: SyntheticTasks, aug: AugConfig,
               augment: bool = True):
    """The batch of training step ``step``: (support size, query, query label, support images,
    support labels), augmented unless ``augment`` is False. Its randomness comes from (seed,
    step) alone."""
    gen = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
    lo, hi = cfg["support"][0], cfg["support"][-1]
    n_support = int(torch.randint(lo, hi + 1, (1,), generator=gen))
    q, qy, si, sl, _names = sample_batch(gen, cfg["batch"], n_support, cfg["input_size"],
                                         real, synth, cfg["p_synthetic"], aug, augment=augment)
    return n_support, q, qy, si, sl


def augment_on(device: str, step: int, cfg: Dict, aug: AugConfig, q, qy, si, sl):
    """Augments an unaugmented batch on ``device`` (batched tensor operations, a generator on
    the device seeded by (seed, step))."""
    gen = torch.Generator(device=device).manual_seed(cfg["seed"] * 1_000_003 + step + 500_009)
    x = torch.cat([q.unsqueeze(1), si], 1).to(device, non_blocking=True)
    y = torch.cat([qy.unsqueeze(1), sl], 1).to(device, non_blocking=True)
    x, y = augment_sets(gen, x, y, aug)
    return x[:, 0], y[:, 0], x[:, 1:], y[:, 1:]


# State of a batch worker process: inherited from the parent at fork (the preloaded tasks are
# shared copy-on-write, not loaded again).
_WORKER_STATE: Dict = {}


def _draw_in_worker(step: int):
    torch.set_num_threads(1)
    st = _WORKER_STATE
    return draw_batch(step, st["cfg"], st["real"], st["synth"], st["aug"], st["augment"])


class BatchSource:
    """Training batches in step order, drawn by ``workers`` processes at most ``prefetch`` steps
    ahead, or in this process when ``workers`` is 0. Tensors come back through shared memory
    (torch.multiprocessing). Create it before CUDA is initialised: the workers are forked."""

    def __init__(self, cfg: Dict, real: List[RealTask], synth: SyntheticTasks, aug: AugConfig,
                 workers: int, prefetch: int, augment: bool = True) -> None:
        self.args = (cfg, real, synth, aug, augment)
        self.pool = None
        self.pending: Dict[int, object] = {}
        self.prefetch = max(1, prefetch)
        if workers > 0:
            import torch.multiprocessing as mp
            _WORKER_STATE.update(cfg=cfg, real=real, synth=synth, aug=aug, augment=augment)
            self.pool = mp.get_context("fork").Pool(workers)

    def get(self, step: int):
        if self.pool is None:
            return draw_batch(step, *self.args)
        for s in range(step, step + self.prefetch):
            if s not in self.pending:
                self.pending[s] = self.pool.apply_async(_draw_in_worker, (s,))
        for s in [s for s in self.pending if s < step]:   # a step skipped (never happens in order)
            del self.pending[s]
        return self.pending.pop(step).get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def lr_at(step: int, cfg: Dict) -> float:
    """Linear warm-up, constant, then cosine decay to lr * lr_min_factor at total_steps."""
    base = cfg["lr"]
    if step < cfg["warmup"]:
        return base * (step + 1) / cfg["warmup"]
    start = int(cfg["lr_decay_start"] * cfg["total_steps"])
    if step < start:
        return base
    t = min(1.0, (step - start) / max(1, cfg["total_steps"] - start))
    lo = base * cfg["lr_min_factor"]
    return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * t))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def build_validation(real: List[RealTask], size: int, n_support: int, seed: int,
                     queries_per_task: int = 8, synthetic_tasks: int = 8) -> List[Dict]:
    """Fixed validation episodes: for each real task, up to ``queries_per_task`` validation
    queries, each with its own support set of ``n_support`` training examples; plus fixed
    synthetic tasks. No augmentation."""
    gen = torch.Generator().manual_seed(seed + 7919)
    episodes = []
    for task in real:
        q_idx = task.val_idx[:queries_per_task]
        n = min(n_support, len(task.train_idx))
        sup = np.stack([task.train_idx[torch.randperm(len(task.train_idx), generator=gen)[:n]
                                       .numpy()] for _ in q_idx])
        episodes.append({"name": task.name, "query": task.images[q_idx],
                         "query_label": task.labels[q_idx],
                         "support_images": task.images[torch.from_numpy(sup)],
                         "support_labels": task.labels[torch.from_numpy(sup)]})
    synth = SyntheticTasks(size)
    qs, qls, sis, sls = [], [], [], []
    for _ in range(synthetic_tasks):
        x, y = synth.sample(gen, n_support + 1)
        qs.append(x[0])
        qls.append(y[0])
        sis.append(x[1:])
        sls.append(y[1:])
    episodes.append({"name": "synthetic", "query": torch.stack(qs),
                     "query_label": torch.stack(qls), "support_images": torch.stack(sis),
                     "support_labels": torch.stack(sls)})
    return episodes


def intensity_baseline(ep: Dict, bins: int = 32) -> torch.Tensor:
    """Non-learned baseline: foreground frequency per intensity bin over the support pixels,
    thresholded at 0.5, applied to each query."""
    out = []
    for b in range(ep["query"].shape[0]):
        si = (ep["support_images"][b].flatten() * bins).long().clamp(0, bins - 1)
        sl = ep["support_labels"][b].flatten()
        fg = torch.bincount(si, weights=sl, minlength=bins)
        tot = torch.bincount(si, minlength=bins).float()
        freq = fg / tot.clamp_min(1)
        qi = (ep["query"][b] * bins).long().clamp(0, bins - 1)
        out.append(freq[qi] > 0.5)
    return torch.stack(out)


@torch.no_grad()
def evaluate(model: torch.nn.Module, episodes: List[Dict], device: str) -> Dict[str, float]:
    """Mean Dice (percent, threshold 0.5) per validation task, and their mean."""
    model.eval()
    res, abs_logit, fg = {}, [], []
    for ep in episodes:
        logits = model(ep["query"].to(device), ep["support_images"].to(device),
                       ep["support_labels"].to(device)).cpu()
        res[ep["name"]] = 100.0 * hard_dice(logits > 0, ep["query_label"] > 0.5).mean().item()
        abs_logit.append(logits.abs().mean().item())
        fg.append((logits > 0).float().mean().item() - (ep["query_label"] > 0.5).float().mean().item())
    res["mean"] = float(np.mean([v for k, v in res.items()]))
    model.train()
    # Saturation diagnostics (not part of the mean): mean |logit| and predicted minus true
    # foreground fraction, averaged over the validation tasks.
    return res, {"mean_abs_logit": float(np.mean(abs_logit)), "fg_excess": float(np.mean(fg))}


# --------------------------------------------------------------------------------------------
# Checkpoints, log, plot
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    state: Dict) -> None:
    """Atomic write (tmp file + rename) so an interrupted save never corrupts the checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng_torch": torch.get_rng_state(), **state}, tmp)
    os.replace(tmp, path)


def append_log(path: Path, record: Dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def plot_log(log_path: Path, out_png: Path) -> None:
    """Training loss (raw and smoothed) and validation Dice against steps."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    train, evals = [], []
    for line in open(log_path):
        rec = json.loads(line)
        (train if rec["kind"] == "train" else evals if rec["kind"] == "eval" else []).append(rec)
    if not train:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = np.array([r["step"] for r in train])
    loss = np.array([r["loss"] for r in train])
    axes[0].plot(steps, loss, lw=0.6, alpha=0.4, label="loss (per log interval)")
    if len(loss) > 5:
        k = min(20, len(loss) // 3)
        sm = np.convolve(loss, np.ones(k) / k, mode="valid")
        axes[0].plot(steps[k - 1:], sm, lw=1.5, label=f"moving average ({k})")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("soft Dice loss")
    axes[0].set_title("training loss (augmented tasks)")
    axes[0].grid(alpha=0.3)
    axes[0].legend()
    if evals:
        es = [r["step"] for r in evals]
        names = [k for k in evals[-1]["dice"] if k != "mean"]
        for name in names:
            axes[1].plot(es, [r["dice"].get(name, np.nan) for r in evals], lw=1, label=name)
        axes[1].plot(es, [r["dice"]["mean"] for r in evals], "k", lw=2.5, label="mean")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("Dice (%)")
        axes[1].set_title("validation Dice (training datasets' val split, no aug)")
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------------------------


def main() -> int:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    run_dir = args.run_dir or RUNS / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "snapshots").mkdir(exist_ok=True)
    cfg_path, ckpt_path, log_path = run_dir / "config.json", run_dir / "checkpoint.pt", run_dir / "log.jsonl"

    cli = {
        "encoder_widths": parse_ints(args.encoder_widths),
        "decoder_widths": parse_ints(args.decoder_widths),
        "input_size": args.input_size, "batch": args.batch, "support": parse_ints(args.support),
        "lr": args.lr, "warmup": args.warmup, "lr_decay_start": args.lr_decay_start,
        "lr_min_factor": args.lr_min_factor, "total_steps": args.total_steps,
        "p_synthetic": args.p_synthetic, "aug_strength": args.aug_strength,
        "noise_var_max": args.noise_var_max, "seed": args.seed,
        "weight_decay": args.weight_decay, "grad_clip": args.grad_clip,
        "data_dir": str(args.data_dir.resolve()),
        "exclude": sorted(set(filter(None, args.exclude.split(","))) | set(HELD_OUT)),
        "val_support": args.val_support, "bce_weight": args.bce_weight,
        "split_seed": args.split_seed,
    }
    if cfg_path.exists() and ckpt_path.exists():
        cfg = json.load(open(cfg_path))
        cfg.setdefault("bce_weight", 0.0)      # runs created before these options existed
        cfg.setdefault("split_seed", cfg["seed"])
        changed = {k: (cfg.get(k), cli[k]) for k in RUN_KEYS if cfg.get(k) != cli[k]}
        if changed:
            print("resuming: keeping the run's stored settings; differing command-line values "
                  f"ignored: {changed}", flush=True)
    else:
        cfg = cli
        json.dump(cfg, open(cfg_path, "w"), indent=2)
    assert "wbc-cv" in cfg["exclude"]

    t_load = time.time()
    real = load_real_tasks(Path(cfg["data_dir"]), cfg["input_size"], cfg["split_seed"],
                           exclude=cfg["exclude"])
    assert not any(t.name.startswith("wbc-cv") for t in real)
    print(f"loaded {len(real)} real tasks in {time.time() - t_load:.1f} s: "
          + ", ".join(f"{t.name} ({len(t.train_idx)}+{len(t.val_idx)})" for t in real), flush=True)
    synth = SyntheticTasks(cfg["input_size"])
    aug = AugConfig(strength=cfg["aug_strength"], noise_var_max=cfg["noise_var_max"])
    # Batch workers are forked here, before CUDA is initialised.
    batches = BatchSource(cfg, real, synth, aug, args.workers, args.prefetch, augment=not args.augment_on_device)
    device = args.device
    model = UniverSegFast(cfg["encoder_widths"], cfg["decoder_widths"])
    kaiming_init_(model, seed=cfg["seed"])
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    state = {"step": 0, "examples": 0, "wall_s": 0.0, "best_val": -1.0, "config": cfg}
    if args.init_from is not None and not ckpt_path.exists():
        if args.init_from.suffix == ".safetensors":
            # Shipped weights (the worker's file): parameters under the same names, no optimiser.
            loaded, meta = load_model(args.init_from, fast=True)
            if [list(loaded.encoder_widths), list(loaded.decoder_widths)] != [cfg["encoder_widths"], cfg["decoder_widths"]]:
                print(f"error: {args.init_from} has widths {loaded.encoder_widths} / {loaded.decoder_widths}, "
                      f"the run {cfg['encoder_widths']} / {cfg['decoder_widths']}", file=sys.stderr)
                return 1
            model.load_state_dict(loaded.state_dict())
            cfg["init_from"] = (f"{args.init_from} ({meta.get('name', '?')}, "
                                f"{meta.get('training_minutes', '?')} training minutes)")
            # The phases behind those weights, for the exported file's provenance.
            cfg["init_from_note"] = meta.get("training_note", "")
        else:
            ck = torch.load(args.init_from, map_location=device, weights_only=False)
            model.load_state_dict(ck["model"])
            cfg["init_from"] = f"{args.init_from} (step {ck['step']}, {ck['examples']} examples)"
        json.dump(cfg, open(cfg_path, "w"), indent=2)
        print(f"initialised the model from {cfg['init_from']}", flush=True)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng_torch"])
        state.update({k: ck[k] for k in ("step", "examples", "wall_s", "best_val")})
        print(f"resumed {ckpt_path} at step {state['step']} "
              f"({state['wall_s'] / 60:.1f} min trained)", flush=True)
    print(f"model: encoder {cfg['encoder_widths']} decoder {cfg['decoder_widths']} "
          f"input {cfg['input_size']} params {parameter_count(model)} threads {args.threads}",
          flush=True)

    episodes = build_validation(real, cfg["input_size"], cfg["val_support"], cfg["split_seed"])
    if state["step"] == 0 and not log_path.exists():
        base = {}
        for ep in episodes:
            base[ep["name"]] = 100.0 * hard_dice(intensity_baseline(ep),
                                                 ep["query_label"] > 0.5).mean().item()
        base["mean"] = float(np.mean(list(base.values())))
        append_log(log_path, {"kind": "baseline", "method": "intensity-32-bins", "dice": base})
        print("validation intensity baseline: " + json.dumps({k: round(v, 1) for k, v in base.items()}),
              flush=True)

    stop = {"flag": False}

    def on_signal(signum, _frame):
        print(f"signal {signum}: stopping after this step", flush=True)
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t_start = time.time()
    deadline = t_start + 60 * args.max_minutes if args.max_minutes else None
    wall_at_start = state["wall_s"]
    interval_wait = 0.0
    interval_loss, interval_dice, interval_n, interval_t = 0.0, 0.0, 0, time.time()
    interval_cpu = time.process_time()
    model.train()

    def checkpoint(reason: str) -> None:
        state["wall_s"] = wall_at_start + (time.time() - t_start)
        save_checkpoint(ckpt_path, model, opt, state)

    def run_eval() -> None:
        nonlocal interval_t, interval_cpu
        t0, c0 = time.time(), time.process_time()
        dice, diag = evaluate(model, episodes, device)
        rec = {"kind": "eval", "step": state["step"], "examples": state["examples"],
               "wall_s": round(wall_at_start + time.time() - t_start, 1),
               "eval_s": round(time.time() - t0, 1), "dice": dice, **diag}
        append_log(log_path, rec)
        print(f"eval step {state['step']}: " + ", ".join(f"{k} {v:.1f}" for k, v in dice.items())
              + f" | mean|logit| {diag['mean_abs_logit']:.2f}, fg excess {diag['fg_excess']:+.3f}",
              flush=True)
        checkpoint("eval")
        if dice["mean"] > state["best_val"]:
            state["best_val"] = dice["mean"]
            shutil.copyfile(ckpt_path, run_dir / "best.pt")
        plot_log(log_path, run_dir / "loss_curve.png")
        interval_t += time.time() - t0          # keep s_per_step a pure training figure
        interval_cpu += time.process_time() - c0

    if state["step"] == 0:
        run_eval()
    while True:
        step = state["step"]
        if args.max_steps is not None and step >= args.max_steps:
            break
        if deadline is not None and time.time() >= deadline:
            break
        if stop["flag"]:
            break
        t_wait = time.time()
        n_support, q, qy, si, sl = batches.get(step)
        if args.augment_on_device:
            q, qy, si, sl = augment_on(device, step, cfg, aug, q, qy, si, sl)
        interval_wait += time.time() - t_wait
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(q.to(device), si.to(device), sl.to(device))
        dice_loss = soft_dice_loss(logits, qy.to(device))
        loss = dice_loss
        if cfg["bce_weight"] > 0:
            loss = loss + cfg["bce_weight"] * F.binary_cross_entropy_with_logits(
                logits, qy.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        if not torch.isfinite(loss):
            print(f"non-finite loss at step {step}; stopping", flush=True)
            batches.close()
            return 2
        state["step"] = step + 1
        state["examples"] += cfg["batch"] * (n_support + 1)
        interval_loss += loss.item()
        interval_dice += dice_loss.item()
        interval_n += 1
        if state["step"] % args.log_every == 0:
            now = time.time()
            rec = {"kind": "train", "step": state["step"], "examples": state["examples"],
                   "loss": round(interval_loss / interval_n, 5),
                   "dice_loss": round(interval_dice / interval_n, 5), "lr": lr,
                   "wall_s": round(wall_at_start + now - t_start, 1),
                   "s_per_step": round((now - interval_t) / interval_n, 3),
                   # process CPU seconds (all threads) per step: unlike s_per_step it does not
                   # grow while the run is stopped (SIGSTOP) or waits for the CPU
                   "cpu_s_per_step": round((time.process_time() - interval_cpu) / interval_n, 3),
                   # seconds per step spent waiting for the batch (drawing it, with --workers 0;
                   # augmenting it, with --augment-on-device)
                   "data_s_per_step": round(interval_wait / interval_n, 3),
                   "threads": args.threads, "workers": args.workers}
            append_log(log_path, rec)
            print(json.dumps(rec), flush=True)
            interval_loss, interval_dice, interval_n, interval_t = 0.0, 0.0, 0, now
            interval_wait = 0.0
            interval_cpu = time.process_time()
        if state["step"] % args.eval_every == 0:
            run_eval()
        elif state["step"] % args.ckpt_every == 0:
            checkpoint("periodic")
        if state["step"] % args.snapshot_every == 0:
            checkpoint("snapshot")
            shutil.copyfile(ckpt_path, run_dir / "snapshots" / f"step{state['step']:06d}.pt")

    batches.close()
    if state["step"] % args.eval_every != 0:
        run_eval()
    else:
        checkpoint("final")
        plot_log(log_path, run_dir / "loss_curve.png")
    print(f"stopped at step {state['step']} ({state['examples']} examples, "
          f"{state['wall_s'] / 60:.1f} min trained in total); checkpoint {ckpt_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
