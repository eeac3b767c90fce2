#!/usr/bin/env python3
"""Write small PNG files in every standard format for the Swift PNG decoder tests.

The files are encoded here by hand (struct + zlib, no imaging library), so the decoder is
checked against an independent encoder. Every file holds the same 3x2 picture, given as
RGB triples in COLORS below; the Swift tests compute the expected luminance from those
triples themselves.

Usage: python3 Scripts/make_png_fixtures.py [OUT_DIR]   (default Tests/SegIOTests/Fixtures)
"""
import struct
import sys
import zlib
from pathlib import Path

# 3 x 2 picture, row-major, 8-bit RGB.
COLORS = [(0, 0, 0), (255, 0, 0), (0, 255, 0),
          (0, 0, 255), (255, 255, 255), (10, 20, 30)]
GRAYS = [0, 17, 34, 85, 170, 255]
W, H = 3, 2


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(color_type: int, bit_depth: int, rows: list, extra: list = (), interlace: int = 0,
        width: int = W, height: int = H) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 (None) on every row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def rows_of(pixels: list, pack) -> list:
    return [b"".join(pack(p) for p in pixels[y * W:(y + 1) * W]) for y in range(H)]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/SegIOTests/Fixtures")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "gray8.png": png(0, 8, rows_of(GRAYS, lambda g: bytes([g]))),
        "gray16.png": png(0, 16, rows_of(GRAYS, lambda g: struct.pack(">H", g * 257))),
        "gray-alpha8.png": png(4, 8, rows_of(GRAYS, lambda g: bytes([g, 128]))),
        "rgb8.png": png(2, 8, rows_of(COLORS, lambda c: bytes(c))),
        "rgb16.png": png(2, 16, rows_of(COLORS, lambda c: struct.pack(">HHH", *(v * 257 for v in c)))),
        "rgba8.png": png(6, 8, rows_of(COLORS, lambda c: bytes(c) + b"\x40")),
        "palette8.png": png(3, 8, rows_of(list(range(6)), lambda i: bytes([i])),
                            extra=[(b"PLTE", b"".join(bytes(c) for c in COLORS))]),
    }
    # 1-bit gray, 8 x 1: bits 10110001 -> 255, 0, 255, 255, 0, 0, 0, 255.
    files["gray1.png"] = png(0, 1, [bytes([0b10110001])], width=8, height=1)
    # Interlaced (Adam7) 8-bit gray, 3 x 2: pass images are laid out by hand.
    # Pass 1: (0,0). Pass 2: none (x=4). Pass 3: none (y=4). Pass 4: (2,0). Pass 5: none (y=2).
    # Pass 6: (1,0). Pass 7: row 1, all x.
    g = GRAYS
    passes = [b"\x00" + bytes([g[0]]), b"\x00" + bytes([g[2]]), b"\x00" + bytes([g[1]]),
              b"\x00" + bytes(g[3:6])]
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 1)
    files["gray8-interlaced.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                     + chunk(b"IDAT", zlib.compress(b"".join(passes))) + chunk(b"IEND", b""))
    # A header declaring 100000 x 100000 pixels (decompression bomb) with a tiny IDAT.
    files["bomb.png"] = png(0, 8, [b"\x00"], width=100000, height=100000)
    for name, data in files.items():
        (out / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
