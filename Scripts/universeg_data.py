"""Task sampling and augmentation for UniverSeg training (CPU, PyTorch).

Two task sources:

* ``SyntheticTasks``: procedurally generated tasks in the spirit of the paper's synthetic data.
  Each task draws its own *shape* distribution (region layout, smoothness, object size) and its
  own *appearance* distribution (per-region intensity, texture scale and strength, illumination,
  noise, blur); every example of the task is a fresh sample from those distributions, so the
  support set tells the network what this task looks like. Three layouts:
    - "regions": a tessellation into K regions (argmax of K smoothed noise fields); the target is
      one or two of the regions;
    - "objects": one or more blob-shaped objects, optionally with a nested inner blob (like a cell
      with a nucleus); the target is the whole object, its inner part or the ring around it;
    - "curves": thin curvilinear structures (level lines of a smoothed field), vessel- or
      membrane-like.
* ``RealTasks``: each (dataset, label) pair of a datasets directory (layout
  ``DATASET/128/images/ID.png`` and ``DATASET/128/labels/LABEL/ID.png``), with a seeded
  train/validation split of the IDs. Excluded datasets (always the held-out suite: ``wbc-cv``,
  ``covid19-ct-infection``, ``fuseg-foot-ulcer``, ``isic2017-skin-lesion``) are never read.

Augmentations follow the paper's Table 4 (shared/seed/universeg-notes.txt): in-task augmentations
drawn independently for every example, then task augmentations drawn once per task and applied
identically to the query and the whole support set. Spatial parameters given for 128x128 inputs are
scaled to the working size.

All randomness comes from an explicit ``torch.Generator`` (and numpy ``Generator`` where used), so
a step is reproducible from (seed, step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# The held-out suite (Config/eval/heldout.suite): wbc-cv and three datasets whose modality no
# training dataset shares (chest CT, clinical wound photos, dermoscopy). Never read for training.
HELD_OUT = ("wbc-cv", "covid19-ct-infection", "fuseg-foot-ulcer", "isic2017-skin-lesion")


# --------------------------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------------------------


def uniform(gen: torch.Generator, shape: Sequence[int], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=gen, device=gen.device) * (hi - lo) + lo


def bernoulli(gen: torch.Generator, shape: Sequence[int], p: float) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=gen, device=gen.device) < p


def smooth_fields(gen: torch.Generator, count: int, size: int, sigma: torch.Tensor
                  ) -> torch.Tensor:
    """``count`` Gaussian-smoothed white-noise fields [count, size, size], each normalised to
    zero mean and unit std. ``sigma`` (pixels) is a scalar or a [count] tensor. Periodic (FFT)."""
    noise = torch.randn(count, size, size, generator=gen, device=gen.device)
    f = torch.fft.fftfreq(size, device=gen.device)
    f2 = (f[:, None] ** 2 + f[None, :] ** 2)[None]
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=gen.device).reshape(-1, 1, 1)
    kernel = torch.exp(-2.0 * (math.pi ** 2) * sigma ** 2 * f2)
    out = torch.fft.ifft2(torch.fft.fft2(noise) * kernel).real
    out = out - out.mean(dim=(1, 2), keepdim=True)
    return out / (out.std(dim=(1, 2), keepdim=True) + 1e-6)


def gaussian_kernels(sigma: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Per-sigma normalised 2D Gaussian kernels [len(sigma), 1, k, k]."""
    r = torch.arange(ksize, dtype=torch.float32, device=sigma.device) - (ksize - 1) / 2
    g = torch.exp(-(r[None, :] ** 2) / (2 * sigma.reshape(-1, 1).clamp_min(1e-3) ** 2))
    g = g / g.sum(dim=1, keepdim=True)
    return (g[:, :, None] * g[:, None, :]).unsqueeze(1)


def blur_per_image(x: torch.Tensor, sigma: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Blur each image of x [M, 1, H, W] with its own sigma [M] (reflect padding)."""
    m = x.shape[0]
    k = gaussian_kernels(sigma, ksize)
    xp = F.pad(x.reshape(1, m, *x.shape[2:]), [ksize // 2] * 4, mode="reflect")
    return F.conv2d(xp, k, groups=m).reshape_as(x)


_SHARP_KERNEL = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0


def sharpen(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Sharpness adjustment (blend of the image with a 3x3 smoothed copy; factor > 1 sharpens),
    border pixels kept, clamped to [0, 1]."""
    m = x.shape[0]
    smooth = F.conv2d(x.reshape(m, 1, *x.shape[2:]), _SHARP_KERNEL.to(x.device).view(1, 1, 3, 3))
    out = x.clone()
    inner = out[:, :, 1:-1, 1:-1]
    out[:, :, 1:-1, 1:-1] = (smooth + factor * (inner - smooth)).clamp(0, 1)
    return out


def minmax_per_image(x: torch.Tensor) -> torch.Tensor:
    """Scale every image of x [..., H, W] to [0, 1] by its own minimum and maximum (a constant
    image becomes all zeros). This is the worker's input normalisation
    (Sources/SegIO/Preprocess.swift, applied after resizing), so training must feed the network
    images normalised the same way."""
    flat = x.flatten(-2)
    lo = flat.min(dim=-1).values[..., None, None]
    span = flat.max(dim=-1).values[..., None, None] - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), torch.zeros_like(x))


def sobel_edges(y: torch.Tensor) -> torch.Tensor:
    """Binary edge map of a binary label [M, 1, H, W] (Sobel magnitude > 0.5)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=y.device).view(1, 1, 3, 3)
    ky = kx.transpose(2, 3)
    yp = F.pad(y, [1, 1, 1, 1], mode="replicate")
    mag = torch.sqrt(F.conv2d(yp, kx) ** 2 + F.conv2d(yp, ky) ** 2)
    return (mag > 0.5).float()


def affine_thetas(gen: torch.Generator, n: int, active: torch.Tensor,
                  degrees: Tuple[float, float] = (0.0, 360.0),
                  translate: float = 0.2, scale: Tuple[float, float] = (0.8, 1.1)
                  ) -> torch.Tensor:
    """[n, 2, 3] affine_grid matrices: random rotation, scale, translation (fraction of the
    image size) where ``active``, identity elsewhere."""
    ang = uniform(gen, [n], *degrees) * math.pi / 180
    sc = uniform(gen, [n], *scale)
    t = uniform(gen, [n, 2], -translate, translate) * 2.0       # normalised coords span 2
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc          # output->input mapping
    theta = torch.zeros(n, 2, 3, device=gen.device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, t[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, t[:, 1]
    ident = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=gen.device).expand(n, 2, 3)
    return torch.where(active.view(n, 1, 1), theta, ident)


def elastic_displacements(gen: torch.Generator, n: int, size: int, active: torch.Tensor,
                          alpha: Tuple[float, float], sigma: Tuple[float, float]) -> torch.Tensor:
    """[n, H, W, 2] smooth random displacement fields in normalised coordinates (zero where not
    active). Parameterised like a blurred-uniform-noise elastic transform at 128x128: the field
    has the std that U(-1,1) noise blurred with sigma (pixels at 128) and scaled by alpha has."""
    a = uniform(gen, [n], *alpha)
    s = uniform(gen, [n], *sigma)
    std = a * (1.0 / math.sqrt(3.0)) / (2.0 * math.sqrt(math.pi) * s)
    s_here = s * size / 128.0
    fields = smooth_fields(gen, 2 * n, size, s_here.repeat_interleave(2))
    disp = fields.view(n, 2, size, size).permute(0, 2, 3, 1) * std.view(n, 1, 1, 1)
    return disp * active.view(n, 1, 1, 1).float()


def warp(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor,
         disp: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample images (bilinear) and labels (bilinear, re-binarised) with one grid."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if disp is not None:
        grid = grid + disp
    xw = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yw = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return xw, (yw > 0.5).float()


# --------------------------------------------------------------------------------------------
# Augmentation (paper Table 4)
# --------------------------------------------------------------------------------------------


@dataclass
class AugConfig:
    """Probabilities of Table 4 (scale them all with ``strength``; 0 disables augmentation)."""
    strength: float = 1.0
    # in-task (per example)
    ex_affine: float = 0.50
    ex_brightness_contrast: float = 0.25
    ex_blur: float = 0.25
    ex_noise: float = 0.25
    ex_sharpness: float = 0.25
    ex_elastic: float = 0.80
    # task (per task, same for all examples of the task)
    flip_intensities: float = 0.50
    flip_labels: float = 0.50
    hv_flip: float = 0.50
    sobel_label: float = 0.50
    task_affine: float = 0.50
    task_brightness_contrast: float = 0.50
    task_elastic: float = 0.25
    task_blur: float = 0.50
    task_noise: float = 0.50
    task_sharpness: float = 0.50
    # Table 4 lists a noise variance range [0, 0.05] (std up to 0.22), which at 64x64 with
    # both in-task and task noise leaves little signal; the default is gentler.
    noise_var_max: float = 0.01

    def p(self, name: str) -> float:
        return min(1.0, getattr(self, name) * self.strength)


def _bc_blur_sharpen(gen: torch.Generator, x: torch.Tensor, groups: torch.Tensor,
                     n_groups: int, cfg: AugConfig, prefix: str,
                     contrast: Tuple[float, float]) -> torch.Tensor:
    """Brightness/contrast, Gaussian blur and sharpness, with parameters drawn per group (a
    group is one example for in-task augmentation, one task set for task augmentation) and
    applied to every image of the group. x: [M, 1, H, W] in [0, 1]; groups: [M] in [0, n)."""
    size = x.shape[-1]
    # brightness in [-0.1, 0.1], contrast factor in ``contrast``
    on = bernoulli(gen, [n_groups], cfg.p(f"{prefix}_brightness_contrast"))[groups]
    b = uniform(gen, [n_groups], -0.1, 0.1)[groups].view(-1, 1, 1, 1)
    c = uniform(gen, [n_groups], *contrast)[groups].view(-1, 1, 1, 1)
    x = torch.where(on.view(-1, 1, 1, 1), (x * c + b).clamp(0, 1), x)
    # Gaussian blur, kernel 5, sigma in [0.1, 1.1] px at 128x128
    on = bernoulli(gen, [n_groups], cfg.p(f"{prefix}_blur"))[groups]
    if on.any():
        sig = uniform(gen, [n_groups], 0.1, 1.1)[groups] * size / 128.0
        x = torch.where(on.view(-1, 1, 1, 1), blur_per_image(x, sig), x)
    # sharpness, factor 5
    on = bernoulli(gen, [n_groups], cfg.p(f"{prefix}_sharpness"))[groups]
    if on.any():
        x = torch.where(on.view(-1, 1, 1, 1), sharpen(x, 5.0), x)
    return x


def _noise(gen: torch.Generator, x: torch.Tensor, groups: torch.Tensor, n_groups: int,
           cfg: AugConfig, prefix: str) -> torch.Tensor:
    """Additive Gaussian noise, mean in [0, 0.05], variance in [0, cfg.noise_var_max], with a
    fresh noise image per example and parameters drawn per group."""
    on = bernoulli(gen, [n_groups], cfg.p(f"{prefix}_noise"))[groups]
    if not on.any():
        return x
    mu = uniform(gen, [n_groups], 0.0, 0.05)[groups].view(-1, 1, 1, 1)
    sd = uniform(gen, [n_groups], 0.0, cfg.noise_var_max)[groups].sqrt().view(-1, 1, 1, 1)
    noisy = x + mu + sd * torch.randn(x.shape, generator=gen, device=gen.device)
    return torch.where(on.view(-1, 1, 1, 1), noisy.clamp(0, 1), x)


def augment_sets(gen: torch.Generator, x: torch.Tensor, y: torch.Tensor, cfg: AugConfig
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Augment B task sets. x, y: [B, M, 1, H, W] (entry 0 of each set is the query).

    Batched tensor operations only, on the device of ``gen`` (x and y must be there too): on a
    GPU the whole augmentation runs there.

    In-task augmentations are drawn per example, task augmentations once per set and applied
    identically to its M examples (Table 4). Order: spatial (in-task, then task), then
    brightness/contrast, blur and sharpness (in-task, then task), then noise (in-task, then
    task), then the intensity flip, Sobel-edge labels and label flip. Noise comes after
    sharpening so that the factor-5 sharpening does not multiply it. Finally every image is
    min-max normalised, as the worker does with every input."""
    if cfg.strength <= 0:
        return x, y
    bsz, m, _, h, w = x.shape
    n = bsz * m
    xf, yf = x.reshape(n, 1, h, w), y.reshape(n, 1, h, w)
    per_example = torch.arange(n, device=x.device)
    per_task = torch.arange(bsz, device=x.device).repeat_interleave(m)

    # in-task spatial: affine + variable elastic, one resampling
    aff = bernoulli(gen, [n], cfg.p("ex_affine"))
    ela = bernoulli(gen, [n], cfg.p("ex_elastic"))
    if aff.any() or ela.any():
        theta = affine_thetas(gen, n, aff)
        disp = elastic_displacements(gen, n, h, ela, (1.0, 2.5), (7.0, 8.0))
        xf, yf = warp(xf, yf, theta, disp)
    # task spatial: horizontal / vertical flip, affine, elastic
    flip_h = bernoulli(gen, [bsz], cfg.p("hv_flip") / 2)[per_task].view(-1, 1, 1, 1)
    flip_v = bernoulli(gen, [bsz], cfg.p("hv_flip") / 2)[per_task].view(-1, 1, 1, 1)
    xf, yf = torch.where(flip_h, xf.flip(-1), xf), torch.where(flip_h, yf.flip(-1), yf)
    xf, yf = torch.where(flip_v, xf.flip(-2), xf), torch.where(flip_v, yf.flip(-2), yf)
    aff = bernoulli(gen, [bsz], cfg.p("task_affine"))
    ela = bernoulli(gen, [bsz], cfg.p("task_elastic"))
    if aff.any() or ela.any():
        theta = affine_thetas(gen, bsz, aff)[per_task]
        disp = elastic_displacements(gen, bsz, h, ela, (1.0, 2.0), (6.0, 8.0))[per_task]
        xf, yf = warp(xf, yf, theta, disp)
    # intensity
    xf = _bc_blur_sharpen(gen, xf, per_example, n, cfg, "ex", (0.5, 1.5))
    xf = _bc_blur_sharpen(gen, xf, per_task, bsz, cfg, "task", (0.8, 1.2))
    xf = _noise(gen, xf, per_example, n, cfg, "ex")
    xf = _noise(gen, xf, per_task, bsz, cfg, "task")
    # intensity flip, Sobel-edge labels, label flip (task level)
    inv = bernoulli(gen, [bsz], cfg.p("flip_intensities"))[per_task].view(-1, 1, 1, 1)
    xf = torch.where(inv, 1.0 - xf, xf)
    edge = bernoulli(gen, [bsz], cfg.p("sobel_label"))[per_task].view(-1, 1, 1, 1)
    if edge.any():
        yf = torch.where(edge, sobel_edges(yf), yf)
    lflip = bernoulli(gen, [bsz], cfg.p("flip_labels"))[per_task].view(-1, 1, 1, 1)
    yf = torch.where(lflip, 1.0 - yf, yf)
    return minmax_per_image(xf).reshape(x.shape), yf.reshape(y.shape)


# --------------------------------------------------------------------------------------------
# Synthetic tasks
# --------------------------------------------------------------------------------------------


class SyntheticTasks:
    """Procedural tasks: each call draws new task-level shape and appearance parameters and
    ``m`` examples from them."""

    LAYOUTS = ("regions", "objects", "curves")

    def __init__(self, size: int) -> None:
        self.size = size

    def sample(self, gen: torch.Generator, m: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return images and labels [m, 1, S, S] for one new task."""
        layout = self.LAYOUTS[int(torch.randint(0, 3, (1,), generator=gen))]
        regions, n_regions, target, target_ids = getattr(self, "_" + layout)(gen, m)
        image = minmax_per_image(self._appearance(gen, regions, n_regions, target_ids))
        label = target.float()
        return image.unsqueeze(1), label.unsqueeze(1)

    # shape layouts: return (region index map [m,S,S] long, number of regions, target mask,
    # indices of the regions that make up the target) -------------------------------------------
    def _regions(self, gen: torch.Generator, m: int):
        s = self.size
        k = int(torch.randint(2, 7, (1,), generator=gen))
        sigma = float(uniform(gen, [1], s / 40, s / 8))
        bias = uniform(gen, [k], -0.6, 0.6)                      # task-level region sizes
        fields = smooth_fields(gen, m * k, s, sigma).view(m, k, s, s) + bias.view(1, k, 1, 1)
        regions = fields.argmax(dim=1)
        extra = int(bool(bernoulli(gen, [1], 0.3)) and k > 2)
        picks = torch.randperm(k, generator=gen)[: 1 + extra]
        target = torch.zeros(m, s, s, dtype=torch.bool)
        for p in picks.tolist():
            target |= regions == p
        return regions, k, target, picks.tolist()

    def _objects(self, gen: torch.Generator, m: int):
        s = self.size
        n_obj_max = int(torch.randint(1, 5, (1,), generator=gen))
        radius = float(uniform(gen, [1], 0.08, 0.3)) * s          # task-level object size
        irregular = float(uniform(gen, [1], 0.0, 0.5))
        elong = float(uniform(gen, [1], 1.0, 1.8))
        inner_ratio = float(uniform(gen, [1], 0.35, 0.75))
        has_inner = bool(bernoulli(gen, [1], 0.6))
        sigma = float(uniform(gen, [1], s / 30, s / 10))
        yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32),
                                torch.arange(s, dtype=torch.float32), indexing="ij")
        level = torch.full((m, s, s), float("inf"))
        noise = smooth_fields(gen, 2 * m, s, sigma).view(m, 2, s, s)
        for i in range(m):
            n_obj = int(torch.randint(1, n_obj_max + 1, (1,), generator=gen))
            for _ in range(n_obj):
                cy, cx = uniform(gen, [2], 0.15 * s, 0.85 * s).tolist()
                r = radius * float(uniform(gen, [1], 0.7, 1.3))
                ang = float(uniform(gen, [1], 0, math.pi))
                dy, dx = yy - cy, xx - cx
                u = (dx * math.cos(ang) + dy * math.sin(ang)) / elong
                v = (-dx * math.sin(ang) + dy * math.cos(ang)) * elong ** 0.5
                d = torch.sqrt(u ** 2 + v ** 2) / r
                level[i] = torch.minimum(level[i], d)
        level = level * (1.0 + irregular * 0.35 * noise[:, 0])
        outer = level < 1.0
        inner = (level * (1.0 + irregular * 0.3 * noise[:, 1])) < inner_ratio
        regions = outer.long() + (inner & outer & has_inner).long()
        choice = int(torch.randint(0, 3 if has_inner else 1, (1,), generator=gen))
        target = [outer, inner & outer, outer & ~inner][choice]
        target_ids = [[1, 2], [2], [1]][choice]
        return regions, 3, target, target_ids

    def _curves(self, gen: torch.Generator, m: int):
        s = self.size
        sigma = float(uniform(gen, [1], s / 30, s / 8))
        width = float(uniform(gen, [1], 0.04, 0.2))
        field = smooth_fields(gen, m, s, sigma)
        curves = field.abs() < width
        blob = smooth_fields(gen, m, s, sigma * 2) > float(uniform(gen, [1], -0.5, 1.5))
        regions = curves.long() + (blob & ~curves).long() * 2
        return regions, 3, curves, [1]

    # appearance --------------------------------------------------------------------------------
    P_CONTRAST = 0.9          # share of tasks whose target contrasts with every other region

    def _region_means(self, gen: torch.Generator, k: int, target_ids: Sequence[int]
                      ) -> torch.Tensor:
        """Per-region mean intensities. In a share P_CONTRAST of the tasks every non-target
        region's mean differs from every target region's mean by at least a task-level gap
        (0.15-0.4), so that the support set determines the target; otherwise all means are
        free (the target may then be told apart only by texture, or not at all)."""
        mean = uniform(gen, [k], 0.0, 1.0)
        if not bool(bernoulli(gen, [1], self.P_CONTRAST)):
            return mean
        gap = float(uniform(gen, [1], 0.15, 0.4))
        tmeans = mean[list(target_ids)]
        grid = torch.linspace(0.0, 1.0, 201)
        allowed = (grid[:, None] - tmeans[None, :]).abs().min(dim=1).values >= gap
        for r in range(k):
            if r in target_ids:
                continue
            if allowed.any():
                cand = grid[allowed]
                mean[r] = cand[int(torch.randint(0, len(cand), (1,), generator=gen))]
            else:   # targets spread over [0, 1]: take the value farthest from all of them
                far = (grid[:, None] - tmeans[None, :]).abs().min(dim=1).values
                mean[r] = grid[int(far.argmax())]
        return mean

    def _appearance(self, gen: torch.Generator, regions: torch.Tensor, k: int,
                    target_ids: Sequence[int]) -> torch.Tensor:
        """Per-task per-region intensity/texture, per-example jitter, illumination, noise, blur."""
        m, s, _ = regions.shape
        mean = self._region_means(gen, k, target_ids)
        tex_sigma = uniform(gen, [k], 0.5, 4.0) * s / 64
        tex_amp = uniform(gen, [k], 0.0, 0.15)
        jitter = float(uniform(gen, [1], 0.0, 0.08))
        image = torch.zeros(m, s, s)
        for r in range(k):
            tex = smooth_fields(gen, m, s, float(tex_sigma[r]))
            val = mean[r] + jitter * torch.randn(m, 1, 1, generator=gen) + tex_amp[r] * tex
            image = torch.where(regions == r, val, image)
        illum_amp = float(uniform(gen, [1], 0.0, 0.25))
        image = image + illum_amp * smooth_fields(gen, m, s, s / 4) * 0.5
        edge_blur = float(uniform(gen, [1], 0.1, 1.5)) * s / 64
        image = blur_per_image(image.unsqueeze(1), torch.full((m,), edge_blur)).squeeze(1)
        noise = float(uniform(gen, [1], 0.0, 0.06))
        image = image + noise * torch.randn(image.shape, generator=gen)
        return image.clamp(0, 1)


# --------------------------------------------------------------------------------------------
# Real tasks
# --------------------------------------------------------------------------------------------


@dataclass
class RealTask:
    name: str                 # "dataset/label"
    images: torch.Tensor      # [M, 1, S, S] float in [0, 1]
    labels: torch.Tensor      # [M, 1, S, S] float {0, 1}
    train_idx: np.ndarray
    val_idx: np.ndarray


def resize_stack(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize images [M, 1, H, W] to size x size like the worker: bilinear with a triangle
    filter widened when shrinking (PIL BILINEAR = torch antialias=True)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def resize_labels(y: torch.Tensor, size: int) -> torch.Tensor:
    """Resize binary labels [M, 1, H, W] like the worker: nearest neighbour, output pixel o
    takes input floor((o + 0.5) * in / out) (torch "nearest-exact")."""
    if y.shape[-1] == size and y.shape[-2] == size:
        return y
    return F.interpolate(y, size=(size, size), mode="nearest-exact")


def load_real_tasks(data_dir: Path, size: int, seed: int, val_fraction: float = 0.2,
                    exclude: Sequence[str] = HELD_OUT) -> List[RealTask]:
    """Preload every (dataset, label) of ``data_dir`` except the excluded (held-out) datasets.

    Preprocessing is the worker's (Sources/SegIO/Preprocess.swift): images are resized to
    ``size`` (antialiased bilinear) and min-max normalised per image; labels are binarised
    (nonzero = foreground) and resized nearest-neighbour. The IDs of each dataset are split
    (seeded) into train and validation parts."""
    from PIL import Image

    tasks = []
    exclude = set(exclude) | set(HELD_OUT)
    for ds in sorted(p for p in Path(data_dir).iterdir() if p.is_dir()):
        if ds.name in exclude:
            continue
        img_dir = ds / "128" / "images"
        if not img_dir.is_dir():
            continue
        ids = sorted(p.stem for p in img_dir.glob("*.png"))
        if len(ids) < 5:
            continue
        imgs = np.stack([np.asarray(Image.open(img_dir / f"{i}.png").convert("L")) for i in ids])
        images = minmax_per_image(
            resize_stack(torch.from_numpy(imgs).float().div(255).unsqueeze(1), size))
        rng = np.random.default_rng([seed, len(ids)] + [ord(c) for c in ds.name])
        perm = rng.permutation(len(ids))
        n_val = max(4, int(round(val_fraction * len(ids))))
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        for lab_dir in sorted(p for p in (ds / "128" / "labels").iterdir() if p.is_dir()):
            labs = np.stack([np.asarray(Image.open(lab_dir / f"{i}.png").convert("L")) for i in ids])
            labels = resize_labels(torch.from_numpy(labs > 0).float().unsqueeze(1), size)
            tasks.append(RealTask(f"{ds.name}/{lab_dir.name}", images, labels, train_idx, val_idx))
    return tasks


def sample_real(gen: torch.Generator, task: RealTask, m: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """m distinct training examples of a real task (entry 0 is the query)."""
    pool = task.train_idx
    m = min(m, len(pool))
    pick = pool[torch.randperm(len(pool), generator=gen)[:m].numpy()]
    return task.images[pick], task.labels[pick]


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def sample_batch(gen: torch.Generator, batch: int, n_support: int, size: int,
                 real: Sequence[RealTask], synth: SyntheticTasks, p_synthetic: float,
                 aug: AugConfig, augment: bool = True) -> Tuple[torch.Tensor, ...]:
    """One training batch: ``batch`` tasks, each with a query and ``n_support`` support examples
    (not augmented with ``augment`` False: the caller augments, e.g. on the training device).

    Returns query [B,1,S,S], query labels [B,1,S,S], support images and labels [B,N,1,S,S] and
    the list of task names."""
    m = n_support + 1
    xs, ys, names = [], [], []
    for _ in range(batch):
        if not real or bool(bernoulli(gen, [1], p_synthetic)):
            x, y = synth.sample(gen, m)
            names.append("synthetic")
        else:
            task = real[int(torch.randint(0, len(real), (1,), generator=gen))]
            x, y = sample_real(gen, task, m)
            if x.shape[0] < m:  # tiny dataset: repeat examples to fill the set
                rep = torch.arange(m) % x.shape[0]
                x, y = x[rep], y[rep]
            names.append(task.name)
        xs.append(x)
        ys.append(y)
    x, y = torch.stack(xs), torch.stack(ys)
    if augment:
        x, y = augment_sets(gen, x, y, aug)
    return x[:, 0], y[:, 0], x[:, 1:], y[:, 1:], names


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over the batch of 1 - soft Dice (sigmoid probabilities), smoothed by ``eps``."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return (1.0 - (2.0 * inter + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def hard_dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example Dice of binary masks [B, ...]; 1 where both are empty."""
    p, t = pred.flatten(1).float(), target.flatten(1).float()
    inter = (p * t).sum(1)
    den = p.sum(1) + t.sum(1)
    return torch.where(den > 0, 2 * inter / den.clamp_min(1e-9), torch.ones_like(den))
