#!/usr/bin/env python3
"""Convert a PyTorch UniverSeg checkpoint (authors' parameter names) to safetensors.

Usage:
    python3 Scripts/convert_checkpoint.py IN.pt OUT.safetensors [--dtype f32|f16]
                                          [--input-size 128] [--name NAME] [--description TEXT]

IN.pt is a state_dict saved with torch.save, either bare or nested under a "state_dict" or
"model" key (possibly with a "module." prefix from DataParallel). Encoder and decoder widths
are inferred from the tensor shapes; unknown or missing keys are refused with a message that
names them. The output carries the architecture metadata the Swift worker reads:
    format=universeg, encoder_widths, decoder_widths, input_size (+ name, description, source).

The authors' released file universeg_v1_nf64_ss64_STA.pt converts to encoder 64,64,64,64,
decoder 64,64,64, input size 128 (1,182,785 parameters).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Mapping

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from universeg_torch import (architecture_metadata, infer_widths, save_safetensors,  # noqa: E402
                             UniverSegReference, parameter_count)


def extract_state_dict(obj: object) -> Dict[str, torch.Tensor]:
    """Find the state_dict inside a loaded checkpoint object."""
    seen = 0
    while isinstance(obj, Mapping) and seen < 4:
        if all(isinstance(v, torch.Tensor) for v in obj.values()) and obj:
            break
        for key in ("state_dict", "model", "model_state", "model_state_dict", "net"):
            if key in obj:
                obj = obj[key]
                break
        else:
            raise ValueError("checkpoint is a dict without tensors and without a "
                             "'state_dict'/'model' entry; keys: " + ", ".join(map(str, obj))[:300])
        seen += 1
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ValueError(f"cannot find a state_dict in a {type(obj).__name__}")
    sd = {str(k): v for k, v in obj.items()}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    non_tensor = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise ValueError("non-tensor entries in the state_dict: " + ", ".join(non_tensor[:10]))
    return sd


def convert(src: Path, dst: Path, dtype: str, input_size: int, name: str,
            description: str) -> Dict[str, str]:
    obj = torch.load(str(src), map_location="cpu", weights_only=True)
    sd = extract_state_dict(obj)
    enc, dec = infer_widths({k: tuple(v.shape) for k, v in sd.items()})
    factor = 2 ** (len(enc) - 1)
    if input_size % factor:
        raise ValueError(f"--input-size {input_size} is not divisible by {factor}")
    # Load into the reference model as a final check that names and shapes are complete.
    model = UniverSegReference(enc, dec)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    np_dtype = {"f32": np.float32, "f16": np.float16}[dtype]
    tensors = {k: v.detach().double().numpy().astype(np_dtype) for k, v in sd.items()}
    if dtype == "f16":
        biggest = max(float(np.abs(v.detach().double().numpy()).max()) for v in sd.values())
        if biggest > 65504:
            raise ValueError(f"a weight of magnitude {biggest} does not fit float16")
    meta = architecture_metadata(enc, dec, input_size, name=name, description=description,
                                 source=src.name, parameters=str(parameter_count(model)))
    save_safetensors(dst, tensors, meta)
    return meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", type=Path, help="PyTorch checkpoint (.pt) with a UniverSeg state_dict")
    ap.add_argument("output", type=Path, help="output .safetensors file")
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--input-size", type=int, default=128,
                    help="the input size the weights were trained at (default 128)")
    ap.add_argument("--name", default=None, help="metadata 'name' (default: input file stem)")
    ap.add_argument("--description", default="converted from a PyTorch checkpoint")
    args = ap.parse_args()
    try:
        meta = convert(args.input, args.output, args.dtype, args.input_size,
                       args.name or args.input.stem, args.description)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes): "
          + ", ".join(f"{k}={v}" for k, v in meta.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
