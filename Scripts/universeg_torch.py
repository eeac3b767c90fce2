"""UniverSeg in PyTorch: the reference network, an exactly equivalent fast variant, and
safetensors helpers.

This module is the single Python definition of the network used by the project's scripts
(fixture generation, checkpoint conversion, training, export). It is written from the
description of the authors' released v1 network (CrossBlocks whose CrossConv has no activation,
LeakyReLU(0.01) target and support convolutions, bilinear align_corners=True upsampling, a 1x1
output convolution giving logits); parameter names reproduce the state_dict
keys of the authors' released checkpoint, so a state_dict loads into either class unchanged:

    enc_blocks.{i}.cross.cross_conv.{weight,bias}
    enc_blocks.{i}.target.vmapped.conv.{weight,bias}
    enc_blocks.{i}.support.vmapped.conv.{weight,bias}
    dec_blocks.{j}.(same three)
    out_conv.conv.{weight,bias}

Tensor conventions (both classes):
    query            [B, 1, H, W]      values in [0, 1]
    support_images   [B, N, 1, H, W]   values in [0, 1]
    support_labels   [B, N, 1, H, W]   binary {0, 1}
    returns logits   [B, 1, H, W]      (sigmoid gives the foreground probability)
H and W must be divisible by 2 ** (len(encoder_widths) - 1).

Two implementations of the same function:

* ``UniverSegReference`` follows the authors' algorithm literally: each CrossConv is applied
  to the concatenation [query; support_i] for every support entry.
* ``UniverSegFast`` uses exact reductions of the same function. The CrossConv has no
  activation, so with W = [W_u | W_v] split by input channels, z_i = (W_u*u + b) + W_v*v_i:
  the query term is computed once; the query path uses mean_i z_i = (W_u*u + b) +
  mean_i(W_v*v_i); and the last decoder block's support outputs (never used) are skipped,
  its query path convolving W_v with the mean of the (upsampled, concatenated) support
  features once. Both classes compute the same function up to float rounding.

Run ``python3 Scripts/universeg_torch.py`` for a self-test (parameter count, Reference vs Fast
agreement in float32 and float64, gradient agreement, safetensors round trip).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

V1_ENCODER_WIDTHS: Tuple[int, ...] = (64, 64, 64, 64)
V1_DECODER_WIDTHS: Tuple[int, ...] = (64, 64, 64)
V1_PARAMETER_COUNT = 1_182_785
LEAKY_SLOPE = 0.01


# --------------------------------------------------------------------------------------------
# Building blocks (module/attribute names chosen to reproduce the authors' state_dict keys)
# --------------------------------------------------------------------------------------------


class ConvOp(nn.Module):
    """A convolution (stride 1, 'same' zero padding, bias) optionally followed by LeakyReLU.

    The convolution is stored as ``self.conv`` so that keys read ``...conv.weight``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 activation: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=True)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return F.leaky_relu(y, LEAKY_SLOPE) if self.activation else y


class Vmap(nn.Module):
    """Applies a module independently to every entry of a set: [B, N, C, H, W] -> [B, N, C', H, W].

    The wrapped module is stored as ``self.vmapped`` (keys ``...vmapped.conv.weight``).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.vmapped = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        y = self.vmapped(x.reshape(b * n, *x.shape[2:]))
        return y.reshape(b, n, *y.shape[1:])


class CrossOp(nn.Module):
    """The CrossConv: a 3x3 conv (bias, no activation) on [query; support_i] for every i.

    The convolution is stored as ``self.cross_conv`` (keys ``...cross.cross_conv.weight``); its
    input channels are ordered [query channels, support channels].
    """

    def __init__(self, query_channels: int, support_channels: int, out_channels: int) -> None:
        super().__init__()
        self.query_channels = query_channels
        self.support_channels = support_channels
        self.cross_conv = nn.Conv2d(query_channels + support_channels, out_channels, 3,
                                    padding=1, bias=True)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """u: [B, Cu, H, W], v: [B, N, Cv, H, W] -> z: [B, N, Co, H, W] (pairwise, literal)."""
        b, n = v.shape[:2]
        pairs = torch.cat([u.unsqueeze(1).expand(b, n, *u.shape[1:]), v], dim=2)
        z = self.cross_conv(pairs.reshape(b * n, *pairs.shape[2:]))
        return z.reshape(b, n, *z.shape[1:])


class CrossBlock(nn.Module):
    """z_i = CrossConv(u, v_i); u' = TargetConvOp(mean_i z_i); v'_i = SupportConvOp(z_i)."""

    def __init__(self, query_channels: int, support_channels: int, width: int) -> None:
        super().__init__()
        self.cross = CrossOp(query_channels, support_channels, width)
        self.target = Vmap(ConvOp(width, width))
        self.support = Vmap(ConvOp(width, width))

    # Reference (literal) evaluation ---------------------------------------------------------
    def forward(self, u: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        z = self.cross(u, v)
        u_out = self.target.vmapped(z.mean(dim=1))
        v_out = self.support(z)
        return u_out, v_out

    # Reduced (exact) evaluation -------------------------------------------------------------
    def _split_weight(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = self.cross.cross_conv.weight
        cu = self.cross.query_channels
        return w[:, :cu], w[:, cu:], self.cross.cross_conv.bias

    def forward_fast(self, u: torch.Tensor, v: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Same result as ``forward`` using the split CrossConv weight (reductions 1 and 2)."""
        w_u, w_v, bias = self._split_weight()
        b, n = v.shape[:2]
        query_term = F.conv2d(u, w_u, bias, padding=1)                     # once per query
        support_term = F.conv2d(v.reshape(b * n, *v.shape[2:]), w_v, None, padding=1)
        support_term = support_term.reshape(b, n, *support_term.shape[1:])
        z = support_term + query_term.unsqueeze(1)
        # mean_i z_i = query_term + mean_i (W_v * v_i); the mean of already computed support
        # terms is cheaper than a further conv of mean_i v_i and equal by linearity.
        u_out = self.target.vmapped(query_term + support_term.mean(dim=1))
        v_out = self.support(z)
        return u_out, v_out

    def forward_query_only(self, u: torch.Tensor, v_mean: torch.Tensor) -> torch.Tensor:
        """The query output alone, given the mean over the set of the support inputs
        (reduction 3, used for the last decoder block): one conv for the whole set."""
        w_u, w_v, bias = self._split_weight()
        z_mean = F.conv2d(u, w_u, bias, padding=1) + F.conv2d(v_mean, w_v, None, padding=1)
        return self.target.vmapped(z_mean)


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear upsampling with align_corners=True (nn.UpsamplingBilinear2d semantics)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _pool2x(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=2, stride=2)


def _set_apply(fn, v: torch.Tensor) -> torch.Tensor:
    """Apply a [M, C, H, W] -> [M, C', H', W'] function to a set tensor [B, N, C, H, W]."""
    b, n = v.shape[:2]
    y = fn(v.reshape(b * n, *v.shape[2:]))
    return y.reshape(b, n, *y.shape[1:])


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class UniverSegReference(nn.Module):
    """UniverSeg exactly as the authors define it (pairwise CrossConvs, literal evaluation)."""

    def __init__(self, encoder_widths: Sequence[int] = V1_ENCODER_WIDTHS,
                 decoder_widths: Sequence[int] = V1_DECODER_WIDTHS) -> None:
        super().__init__()
        encoder_widths = tuple(int(w) for w in encoder_widths)
        decoder_widths = tuple(int(w) for w in decoder_widths)
        if len(encoder_widths) < 1:
            raise ValueError("need at least one encoder block")
        if len(decoder_widths) != len(encoder_widths) - 1:
            raise ValueError("need exactly one decoder block per pooling step "
                             f"(len(encoder_widths) - 1 = {len(encoder_widths) - 1}), "
                             f"got {len(decoder_widths)}")
        self.encoder_widths = encoder_widths
        self.decoder_widths = decoder_widths

        self.enc_blocks = nn.ModuleList()
        cu, cv = 1, 2
        for width in encoder_widths:
            self.enc_blocks.append(CrossBlock(cu, cv, width))
            cu = cv = width
        skips = list(encoder_widths[:-1])[::-1]
        self.dec_blocks = nn.ModuleList()
        for width, skip in zip(decoder_widths, skips):
            self.dec_blocks.append(CrossBlock(cu + skip, cv + skip, width))
            cu = cv = width
        self.out_conv = ConvOp(cu, 1, kernel_size=1, activation=False)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_widths) - 1)

    def _check_inputs(self, query: torch.Tensor, support_images: torch.Tensor,
                      support_labels: torch.Tensor) -> None:
        if query.dim() != 4 or query.shape[1] != 1:
            raise ValueError(f"query must be [B,1,H,W], got {list(query.shape)}")
        b, _, h, w = query.shape
        for name, t in (("support_images", support_images), ("support_labels", support_labels)):
            if t.dim() != 5 or t.shape[0] != b or t.shape[2] != 1 or tuple(t.shape[3:]) != (h, w):
                raise ValueError(f"{name} must be [B,N,1,H,W] matching the query, "
                                 f"got {list(t.shape)}")
        if support_images.shape[1] != support_labels.shape[1] or support_images.shape[1] < 1:
            raise ValueError("support_images and support_labels need the same N >= 1")
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(f"H and W must be divisible by {f}, got {h}x{w}")

    def forward(self, query: torch.Tensor, support_images: torch.Tensor,
                support_labels: torch.Tensor) -> torch.Tensor:
        self._check_inputs(query, support_images, support_labels)
        u = query
        v = torch.cat([support_images, support_labels], dim=2)
        skips = []
        last = len(self.enc_blocks) - 1
        for i, block in enumerate(self.enc_blocks):
            u, v = block(u, v)
            if i < last:
                skips.append((u, v))
                u, v = _pool2x(u), _set_apply(_pool2x, v)
        for block in self.dec_blocks:
            su, sv = skips.pop()
            u = torch.cat([_upsample2x(u), su], dim=1)
            v = torch.cat([_set_apply(_upsample2x, v), sv], dim=2)
            u, v = block(u, v)
        return self.out_conv(u)


class UniverSegFast(UniverSegReference):
    """Same parameters and names as ``UniverSegReference``; evaluates with the exact
    reductions described in the module docstring (about 3x less work for N >= 16: 2.8x at N=16,
    3.1x at N=64, counted in multiply-accumulates at 128x128). Used for training."""

    def forward(self, query: torch.Tensor, support_images: torch.Tensor,
                support_labels: torch.Tensor) -> torch.Tensor:
        self._check_inputs(query, support_images, support_labels)
        u = query
        v = torch.cat([support_images, support_labels], dim=2)
        skips = []
        last = len(self.enc_blocks) - 1
        for i, block in enumerate(self.enc_blocks):
            if i == last and not self.dec_blocks:
                # Single-block network: the block's support outputs are unused.
                u = block.forward_query_only(u, v.mean(dim=1))
                return self.out_conv(u)
            u, v = block.forward_fast(u, v)
            if i < last:
                skips.append((u, v))
                u, v = _pool2x(u), _set_apply(_pool2x, v)
        n_dec = len(self.dec_blocks)
        for j, block in enumerate(self.dec_blocks):
            su, sv = skips.pop()
            u = torch.cat([_upsample2x(u), su], dim=1)
            if j < n_dec - 1:
                v = torch.cat([_set_apply(_upsample2x, v), sv], dim=2)
                u, v = block.forward_fast(u, v)
            else:
                # Reduction 3: only the mean over the set of this block's support input is
                # needed; upsampling and concatenation commute with the mean (both linear).
                v_mean = torch.cat([_upsample2x(v.mean(dim=1)), sv.mean(dim=1)], dim=1)
                u = block.forward_query_only(u, v_mean)
        return self.out_conv(u)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def kaiming_init_(model: UniverSegReference, seed: Optional[int] = None) -> UniverSegReference:
    """The authors' training initialisation: kaiming-normal weights (fan-in) with LeakyReLU gain
    for the ConvOps (target/support convs), linear gain for the CrossConvs and for the final
    1x1 conv (no activation), zero biases. Deterministic for a given seed (generator-local,
    the global RNG state is left alone)."""
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))

    def fill(conv: nn.Conv2d, gain: float) -> None:
        w = conv.weight
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        std = gain / np.sqrt(fan_in)
        with torch.no_grad():
            sample = torch.randn(w.shape, generator=gen, dtype=torch.float64) * std
            w.copy_(sample.to(w.dtype))
            conv.bias.zero_()

    leaky_gain = float(np.sqrt(2.0 / (1.0 + LEAKY_SLOPE ** 2)))
    for block in list(model.enc_blocks) + list(model.dec_blocks):
        fill(block.cross.cross_conv, 1.0)
        fill(block.target.vmapped.conv, leaky_gain)
        fill(block.support.vmapped.conv, leaky_gain)
    fill(model.out_conv.conv, 1.0)
    return model


# --------------------------------------------------------------------------------------------
# State-dict naming and architecture inference
# --------------------------------------------------------------------------------------------


def expected_keys(n_encoder: int, n_decoder: int) -> list:
    keys = []
    for prefix, n in (("enc_blocks", n_encoder), ("dec_blocks", n_decoder)):
        for i in range(n):
            for part in ("cross.cross_conv", "target.vmapped.conv", "support.vmapped.conv"):
                keys += [f"{prefix}.{i}.{part}.weight", f"{prefix}.{i}.{part}.bias"]
    keys += ["out_conv.conv.weight", "out_conv.conv.bias"]
    return keys


def infer_widths(shapes: Mapping[str, Sequence[int]]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Infer (encoder_widths, decoder_widths) from parameter shapes with the authors' names.

    Raises ValueError with a clear message on unknown or missing keys or inconsistent shapes.
    """
    import re
    pattern = re.compile(r"^(enc|dec)_blocks\.(\d+)\.(cross\.cross_conv|target\.vmapped\.conv|"
                         r"support\.vmapped\.conv)\.(weight|bias)$")
    enc, dec = set(), set()
    unknown = []
    for key in shapes:
        m = pattern.match(key)
        if m:
            (enc if m.group(1) == "enc" else dec).add(int(m.group(2)))
        elif key not in ("out_conv.conv.weight", "out_conv.conv.bias"):
            unknown.append(key)
    if unknown:
        raise ValueError("unknown parameter names (not a UniverSeg state_dict?): "
                         + ", ".join(sorted(unknown)[:10])
                         + (" ..." if len(unknown) > 10 else ""))
    n_enc = max(enc) + 1 if enc else 0
    n_dec = max(dec) + 1 if dec else 0
    if n_enc == 0:
        raise ValueError("no enc_blocks.* parameters found")
    missing = [k for k in expected_keys(n_enc, n_dec) if k not in shapes]
    if missing:
        raise ValueError("missing parameters: " + ", ".join(missing[:10])
                         + (" ..." if len(missing) > 10 else ""))
    enc_w = tuple(int(shapes[f"enc_blocks.{i}.cross.cross_conv.weight"][0]) for i in range(n_enc))
    dec_w = tuple(int(shapes[f"dec_blocks.{i}.cross.cross_conv.weight"][0]) for i in range(n_dec))
    # Full shape check against a model built with these widths.
    try:
        model = UniverSegReference(enc_w, dec_w)
    except ValueError as e:
        raise ValueError(f"inconsistent architecture: {e}") from None
    for name, p in model.state_dict().items():
        if tuple(int(s) for s in shapes[name]) != tuple(p.shape):
            raise ValueError(f"shape mismatch for {name}: got {list(shapes[name])}, expected "
                             f"{list(p.shape)} for encoder {enc_w} / decoder {dec_w}")
    return enc_w, dec_w


def architecture_metadata(encoder_widths: Sequence[int], decoder_widths: Sequence[int],
                          input_size: int, **extra: str) -> Dict[str, str]:
    """The string->string metadata stored with weights (all values are strings)."""
    meta = {
        "format": "universeg",
        "encoder_widths": ",".join(str(int(w)) for w in encoder_widths),
        "decoder_widths": ",".join(str(int(w)) for w in decoder_widths),
        "input_size": str(int(input_size)),
    }
    for k, v in extra.items():
        meta[str(k)] = str(v)
    return meta


def model_from_metadata(meta: Mapping[str, str], fast: bool = False) -> UniverSegReference:
    enc = tuple(int(x) for x in meta["encoder_widths"].split(","))
    dec = tuple(int(x) for x in meta["decoder_widths"].split(",")) if meta.get("decoder_widths") else ()
    return (UniverSegFast if fast else UniverSegReference)(enc, dec)


# --------------------------------------------------------------------------------------------
# safetensors (written by hand: the format is tiny, and this keeps output byte-deterministic)
# --------------------------------------------------------------------------------------------

_DTYPE_TO_ST = {np.dtype("float32"): "F32", np.dtype("float16"): "F16",
                np.dtype("float64"): "F64", np.dtype("int64"): "I64",
                np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
_ST_TO_DTYPE = {v: k for k, v in _DTYPE_TO_ST.items()}


def _to_numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def save_safetensors(path: str | Path, tensors: Mapping[str, object],
                     metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` (torch or numpy, little-endian) as a safetensors file.

    Layout: 8-byte little-endian header length, a JSON header
    {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}} padded
    with spaces to a multiple of 8 bytes, then the raw data in the order of sorted names.
    """
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(_to_numpy(tensors[name]))
        if arr.dtype not in _DTYPE_TO_ST:
            raise ValueError(f"unsupported dtype {arr.dtype} for {name}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPE_TO_ST[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            f.write(data)


def load_safetensors(path: str | Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Read a safetensors file -> (name -> numpy array, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        dt = _ST_TO_DTYPE[info["dtype"]].newbyteorder("<")
        b0, b1 = info["data_offsets"]
        arr = np.frombuffer(blob[base + b0: base + b1], dtype=dt).reshape(info["shape"])
        out[name] = arr.astype(dt.newbyteorder("="), copy=True)
    return out, dict(meta)


def load_model(path: str | Path, fast: bool = False, dtype: torch.dtype = torch.float32
               ) -> Tuple[UniverSegReference, Dict[str, str]]:
    """Build a model from a UniverSeg safetensors file (widths from the metadata, else shapes)."""
    tensors, meta = load_safetensors(path)
    enc, dec = infer_widths({k: v.shape for k, v in tensors.items()})
    model = (UniverSegFast if fast else UniverSegReference)(enc, dec).to(dtype)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(dtype)
                           for k, v in tensors.items()})
    return model, meta


def save_model(path: str | Path, model: UniverSegReference, input_size: int,
               dtype: str = "f32", **extra: str) -> Dict[str, str]:
    """Write a model's parameters (authors' names) with the architecture metadata."""
    np_dtype = {"f32": np.float32, "f16": np.float16}[dtype]
    tensors = {k: v.detach().cpu().double().numpy().astype(np_dtype)
               for k, v in model.state_dict().items()}
    meta = architecture_metadata(model.encoder_widths, model.decoder_widths, input_size, **extra)
    save_safetensors(path, tensors, meta)
    return meta


# --------------------------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------------------------


def _random_inputs(b: int, n: int, size: int, dtype: torch.dtype, seed: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(b, 1, size, size, generator=g, dtype=torch.float64).to(dtype)
    si = torch.rand(b, n, 1, size, size, generator=g, dtype=torch.float64).to(dtype)
    sl = (torch.rand(b, n, 1, size, size, generator=g, dtype=torch.float64) > 0.5).to(dtype)
    return q, si, sl


def self_test(verbose: bool = True) -> Dict[str, float]:
    """Check parameter count, Reference == Fast (values and gradients), safetensors round trip."""
    import tempfile
    results: Dict[str, float] = {}
    v1 = UniverSegReference()
    assert parameter_count(v1) == V1_PARAMETER_COUNT, parameter_count(v1)
    assert list(v1.state_dict().keys()) == expected_keys(4, 3) or \
        sorted(v1.state_dict().keys()) == sorted(expected_keys(4, 3))
    results["v1_parameters"] = parameter_count(v1)

    for enc, dec, size, n in (((8, 8, 8, 8), (8, 8, 8), 32, 5), ((16, 12, 10), (9, 7), 24, 3),
                              ((64, 64, 64, 64), (64, 64, 64), 64, 4)):
        for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
            ref = kaiming_init_(UniverSegReference(enc, dec), seed=1).to(dtype)
            fast = UniverSegFast(enc, dec).to(dtype)
            fast.load_state_dict(ref.state_dict())
            q, si, sl = _random_inputs(2, n, size, dtype, seed=2)
            with torch.no_grad():
                a, b = ref(q, si, sl), fast(q, si, sl)
            diff = (a - b).abs().max().item()
            key = f"fwd enc={enc} {str(dtype)[6:]} maxabs(logit)={a.abs().max().item():.3g}"
            results[key] = diff
            assert diff < tol * max(1.0, a.abs().max().item()), (key, diff)

    # Gradient agreement (float64).
    ref = kaiming_init_(UniverSegReference((8, 8, 8), (8, 8)), seed=3).double()
    fast = UniverSegFast((8, 8, 8), (8, 8)).double()
    fast.load_state_dict(ref.state_dict())
    q, si, sl = _random_inputs(2, 3, 16, torch.float64, seed=4)
    ref(q, si, sl).sum().backward()
    fast(q, si, sl).sum().backward()
    # The last decoder block's support conv is unused by both: its gradient is None in each.
    gdiff = max(0.0 if p1.grad is None and p2.grad is None else
                (p1.grad - p2.grad).abs().max().item()
                for p1, p2 in zip(ref.parameters(), fast.parameters()))
    results["grad float64 maxabs diff"] = gdiff
    assert gdiff < 1e-10, gdiff

    # safetensors round trip, and cross-check with the safetensors package if installed.
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        model = kaiming_init_(UniverSegReference((8, 8, 8, 8), (8, 8, 8)), seed=5)
        save_model(path, model, input_size=64, dtype="f32", name="test")
        loaded, meta = load_model(path)
        assert meta["format"] == "universeg" and meta["encoder_widths"] == "8,8,8,8", meta
        for (k1, v1_), (k2, v2_) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert k1 == k2 and torch.equal(v1_, v2_), k1
        try:
            from safetensors import safe_open
            with safe_open(str(path), framework="np") as f:
                assert f.metadata()["decoder_widths"] == "8,8,8"
                for k in f.keys():
                    assert np.array_equal(f.get_tensor(k), model.state_dict()[k].numpy()), k
            results["safetensors package cross-check"] = 1.0
        except ImportError:
            results["safetensors package cross-check"] = 0.0
    if verbose:
        for k, v in results.items():
            print(f"{k}: {v}" if float(v).is_integer() else f"{k}: {v:.3g}")
        print("self-test OK")
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    self_test()
