#!/usr/bin/env python3
"""Write the bad-input corpus of the `serve` worker (issue 6, "Bad input").

Output (default Tests/WorkerIntegrationTests/Fixtures/bad-requests/):
  manifest.json      every case: name, value file (null = tombstone), headers, expected outcome
  values/NAME.bin    the raw bytes of each record value (malformed JSON stays malformed)
  store/             a small support-set store (file:// layout: <id>/LATEST, <id>/<version>/support.json)
  README.md          the table of cases (generated from the same list)

Python 3 standard library only; deterministic (no randomness, no time stamps). The PNG files
are encoded here by hand (struct + zlib), so the worker's decoder is checked against an
independent encoder. Tests/WorkerIntegrationTests/BadInputTests.swift sends every case through
a running worker and checks the outcome.

Usage: python3 Scripts/make_bad_requests.py [OUT_DIR]
"""
import base64
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

# A marker put in free-text positions of requests: it must never appear in the worker's log,
# in error reasons or in dead-letter reason headers.
CANARY = "ZZCANARY"

# The librdkafka default of message.max.bytes (producer side), the bound a record's
# value + key + headers must stay under.
MAX_RECORD_BYTES = 1_000_000


# ---------------------------------------------------------------------------------------------
# PNG encoding


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(width: int, height: int, bit_depth: int, color_type: int, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))


SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def pack_row(samples: list, bit_depth: int) -> bytes:
    """Samples of one row (channel values, already flattened) packed at bit_depth."""
    if bit_depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if bit_depth == 8:
        return bytes(samples)
    out, acc, used = bytearray(), 0, 0
    for s in samples:
        acc = (acc << bit_depth) | s
        used += bit_depth
        if used == 8:
            out.append(acc)
            acc, used = 0, 0
    if used:
        out.append(acc << (8 - used))
    return bytes(out)


def png(pixels: list, width: int, height: int, color_type: int, bit_depth: int, interlace: bool = False,
        palette: list = None, extra: list = ()) -> bytes:
    """pixels: row-major list of tuples (one value per channel)."""
    def scanlines(xs: range, ys: range) -> bytes:
        raw = b""
        for y in ys:
            samples = [v for x in xs for v in pixels[y * width + x]]
            raw += b"\x00" + pack_row(samples, bit_depth)
        return raw

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            xs, ys = range(x0, width, dx), range(y0, height, dy)
            if len(xs) and len(ys):
                raw += scanlines(xs, ys)
    else:
        raw = scanlines(range(width), range(height))
    out = SIGNATURE + ihdr(width, height, bit_depth, color_type, 1 if interlace else 0)
    if palette is not None:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    for kind, data in extra:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def blob(width: int, height: int, seed: int = 0) -> list:
    """A dark diamond on a bright background: True inside the diamond."""
    cx = width // 3 + seed % 5
    cy = height // 3 + seed % 3
    r = max(1, min(width, height) // 4)
    return [abs(x - cx) + abs(y - cy) < r for y in range(height) for x in range(width)]


def gray8(width: int, height: int, seed: int = 0, **kw) -> bytes:
    return png([(60,) if inside else (180,) for inside in blob(width, height, seed)], width, height, 0, 8, **kw)


def label8(width: int, height: int, seed: int = 0) -> bytes:
    return png([(255,) if inside else (0,) for inside in blob(width, height, seed)], width, height, 0, 8)


# ---------------------------------------------------------------------------------------------
# Support-set store


def write_store(root: Path) -> None:
    def put(relative: str, data: bytes) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def entries(n: int) -> list:
        return [{"image": f"images/{i}.png", "label": f"labels/{i}.png"} for i in range(n)]

    def manifest(name: str, items: list) -> bytes:
        return (json.dumps({"name": name, "version": "1", "label": "blob", "entries": items}, indent=1) + "\n").encode()

    # blobs: the valid set (4 entries, 24 x 24), LATEST = 1.
    for i in range(4):
        put(f"blobs/1/images/{i}.png", gray8(24, 24, i))
        put(f"blobs/1/labels/{i}.png", label8(24, 24, i))
    put("blobs/1/support.json", manifest("blobs", entries(4)))
    put("blobs/LATEST", b"1\n")
    # badmanifest: support.json is truncated JSON.
    put("badmanifest/1/images/0.png", gray8(24, 24))
    put("badmanifest/1/labels/0.png", label8(24, 24))
    put("badmanifest/1/support.json", b'{"name": "badmanifest", "entries": [{"image": "images/0.png", "label": ')
    put("badmanifest/LATEST", b"1\n")
    # emptylabels: valid images, every label all zero.
    for i in range(2):
        put(f"emptylabels/1/images/{i}.png", gray8(24, 24, i))
        put(f"emptylabels/1/labels/{i}.png", png([(0,)] * (24 * 24), 24, 24, 0, 8))
    put("emptylabels/1/support.json", manifest("emptylabels", entries(2)))
    put("emptylabels/LATEST", b"1\n")
    # noentries: a well-formed manifest listing nothing.
    put("noentries/1/support.json", manifest("noentries", []))
    put("noentries/LATEST", b"1\n")
    # missingfile: the manifest names a label that is not there.
    put("missingfile/1/images/0.png", gray8(24, 24))
    put("missingfile/1/support.json", manifest("missingfile", entries(1)))
    put("missingfile/LATEST", b"1\n")
    # corruptimage: an entry image is a truncated PNG.
    put("corruptimage/1/images/0.png", gray8(24, 24)[:40])
    put("corruptimage/1/labels/0.png", label8(24, 24))
    put("corruptimage/1/support.json", manifest("corruptimage", entries(1)))
    put("corruptimage/LATEST", b"1\n")
    # escape: an entry path that leaves the set's directory.
    put("escape/1/support.json", manifest("escape", [{"image": "../../blobs/1/images/0.png", "label": "labels/0.png"}]))
    put("escape/LATEST", b"1\n")
    # badlatest: LATEST names a path, not a version.
    put("badlatest/LATEST", b"../blobs/1\n")
    # nolatest: a valid version 1 but no LATEST file.
    put("nolatest/1/images/0.png", gray8(24, 24))
    put("nolatest/1/labels/0.png", label8(24, 24))
    put("nolatest/1/support.json", manifest("nolatest", entries(1)))
    # Query images read through image.store_path.
    put("queries/q.png", gray8(30, 20, 2))
    # A directory where a manifest should be (committed through a file inside it).
    put("dirmanifest/1/support.json/README", b"support.json is a directory here, not a file\n")
    put("dirmanifest/LATEST", b"1\n")


# ---------------------------------------------------------------------------------------------
# DICOM encoding (explicit VR little endian, by hand: independent of the worker's DCMTK and of
# pydicom, deterministic UIDs under 2.25)

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22"
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG2000 = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
LONG_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UT", "UN", "UC", "UR"}
UNDEFINED = 0xFFFFFFFF


def uid(name: str) -> str:
    """A deterministic UID: 2.25 followed by 96 bits of the name's SHA-256."""
    import hashlib
    return "2.25." + str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:12], "big"))


def element(group: int, elem: int, vr: str, value, length: int = None) -> bytes:
    """One explicit-VR LE element; `value` is bytes, str (padded to even length) or int (US/UL);
    `length` overrides the length field (wrong lengths, undefined length)."""
    if isinstance(value, int):
        data = struct.pack("<H" if vr in ("US", "SS") else "<I", value)
    elif isinstance(value, str):
        data = value.encode("ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
    else:
        data = bytes(value)
    n = len(data) if length is None else length
    head = struct.pack("<HH", group, elem) + vr.encode()
    head += (b"\x00\x00" + struct.pack("<I", n)) if vr in LONG_VRS else struct.pack("<H", n)
    return head + data


def part10(dataset: dict, sop_class: str, sop_instance: str, transfer_syntax: str = EXPLICIT_LE) -> bytes:
    """A Part-10 file: preamble, DICM, file meta group, then the elements of `dataset` in tag order.
    `dataset` maps (group, element) to (vr, value[, length]); raw bytes under the key "raw"
    (a list of (after_tag, bytes)) are inserted after the element with that tag."""
    meta = (element(2, 1, "OB", b"\x00\x01") + element(2, 2, "UI", sop_class) + element(2, 3, "UI", sop_instance)
            + element(2, 0x10, "UI", transfer_syntax) + element(2, 0x12, "UI", uid("universeg-worker tests implementation")))
    out = b"\x00" * 128 + b"DICM" + element(2, 0, "UL", len(meta)) + meta
    for tag in sorted(k for k in dataset if k != "raw"):
        spec = dataset[tag]
        out += element(tag[0], tag[1], spec[0], spec[1], spec[2] if len(spec) > 2 else None)
    return out


def ct_dataset(name: str, rows: int = 24, columns: int = 24, frames: int = None, pixels: bytes = None) -> dict:
    """A small CT image: 16-bit unsigned MONOCHROME2, the blob pattern of the PNG queries."""
    if pixels is None:
        values = [60 if inside else 180 for inside in blob(columns, rows, 2)] * (frames or 1)
        pixels = struct.pack(f"<{len(values)}H", *values)
    ds = {
        (0x0008, 0x0016): ("UI", CT_STORAGE), (0x0008, 0x0018): ("UI", uid(name + "/sop")),
        (0x0008, 0x0060): ("CS", "CT"), (0x0010, 0x0010): ("PN", "Corpus^" + CANARY),
        (0x0010, 0x0020): ("LO", CANARY + "-PID"),
        (0x0020, 0x000D): ("UI", uid("corpus/study")), (0x0020, 0x000E): ("UI", uid("corpus/series")),
        (0x0020, 0x0013): ("IS", "1"),
        (0x0028, 0x0002): ("US", 1), (0x0028, 0x0004): ("CS", "MONOCHROME2"),
        (0x0028, 0x0010): ("US", rows), (0x0028, 0x0011): ("US", columns),
        (0x0028, 0x0100): ("US", 16), (0x0028, 0x0101): ("US", 16), (0x0028, 0x0102): ("US", 15),
        (0x0028, 0x0103): ("US", 0),
        (0x7FE0, 0x0010): ("OW", pixels),
    }
    if frames is not None:
        ds[(0x0028, 0x0008)] = ("IS", str(frames))
    return ds


def ct(name: str, transfer_syntax: str = EXPLICIT_LE, **changes) -> bytes:
    """The CT image with attributes changed: a value replaces (a tuple of vr, value[, length]),
    None removes."""
    ds = ct_dataset(name)
    for tag, spec in changes.get("set", {}).items():
        if spec is None:
            ds.pop(tag, None)
        else:
            ds[tag] = spec
    return part10(ds, ds.get((0x0008, 0x0016), ("UI", CT_STORAGE))[1], uid(name + "/sop"), transfer_syntax)


def encapsulated(fragments: list) -> bytes:
    """Encapsulated PixelData value: an empty basic offset table, the fragments, a sequence delimiter."""
    out = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    for f in fragments:
        out += struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f
    return out + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def pixel_offset(data: bytes) -> int:
    """Where the PixelData element starts."""
    at = data.rfind(b"\xe0\x7f\x10\x00")
    assert at > 0
    return at


def bad_dicoms() -> list:
    """(name, bytes, code, description) of inline DICOM objects."""
    good = ct("dicom-ok")
    P = (0x7FE0, 0x0010)
    study_at = good.find(struct.pack("<HH", 0x0020, 0x000D))
    cases = []

    def add(name, data, code, description):
        cases.append((name, data, code, description))

    # Not DICOM at all.
    add("dicom-text", f"hello {CANARY}, this is not DICOM\n".encode(), "dicom_invalid", "plain text")
    add("dicom-png-bytes", QUERY, "dicom_invalid", "a PNG image sent as dicom_base64")
    add("dicom-garbage", bytes((i * 97 + 13) % 256 for i in range(4096)), "dicom_invalid", "4096 bytes of noise")
    add("dicom-zeros", b"\x00" * 4096, "dicom_invalid", "4096 zero bytes (a preamble without DICM)")
    # Truncated.
    add("dicom-truncated-preamble", good[:64], "dicom_invalid", "cut inside the 128-byte preamble")
    add("dicom-preamble-only", good[:132], "dicom_invalid", "preamble and DICM, nothing else")
    add("dicom-truncated-meta", good[:180], "dicom_invalid", "cut inside the file meta group")
    add("dicom-truncated-header", good[:study_at + 20], "dicom_invalid", "cut inside StudyInstanceUID (before PixelData)")
    add("dicom-truncated-pixeldata", good[:pixel_offset(good) + 12 + 300], "dicom_invalid",
        "cut inside PixelData (300 of 1152 bytes)")
    # Wrong lengths.
    patched = bytearray(good)
    at = pixel_offset(good)
    patched[at + 8:at + 12] = struct.pack("<I", len(good) * 4)
    add("dicom-pixeldata-length-too-long", bytes(patched), "dicom_invalid",
        "the PixelData length claims four times the file size")
    sop_at = good.find(struct.pack("<HH", 0x0008, 0x0018))
    patched = bytearray(good)
    patched[sop_at + 6:sop_at + 8] = struct.pack("<H", 0xFFF0)
    add("dicom-uid-length-too-long", bytes(patched), "dicom_invalid",
        "SOPInstanceUID's 2-byte length is 0xFFF0 (runs past the end)")
    modality_at = good.find(struct.pack("<HH", 0x0008, 0x0060))
    patched = bytearray(good)
    patched[modality_at + 6:modality_at + 8] = struct.pack("<H", 0x31)
    add("dicom-length-swallows-elements", bytes(patched), "dicom_invalid",
        "Modality's length 49 swallows the next elements (parsing resumes mid-element)")
    patched = bytearray(good)
    rows_at = good.find(struct.pack("<HH", 0x0028, 0x0010))
    patched[rows_at + 6:rows_at + 8] = struct.pack("<H", 1)
    add("dicom-rows-length-1", bytes(patched), "dicom_invalid", "Rows (US) with length 1")
    # Undefined lengths.
    add("dicom-undefined-length-ob", good[:at] + element(0x7FE0, 0x0010, "OB", b"garbage " * 64, UNDEFINED),
        "dicom_invalid", "PixelData OB of undefined length with native (non-encapsulated) garbage")
    add("dicom-undefined-length-sq", good[:at] + element(0x5200, 0x9229, "SQ", b"\x01\x02\x03\x04" * 100, UNDEFINED),
        "dicom_invalid", "a sequence of undefined length holding garbage, no delimiter, no PixelData")
    add("dicom-undefined-length-text", good[:study_at] + element(0x0020, 0x000D, "UT", b"1.2.3" * 50, UNDEFINED),
        "dicom_invalid", "an element of undefined length that is not a sequence")
    # Bombs and limits.
    add("dicom-bomb-rows", ct("b1", set={(0x0028, 0x0010): ("US", 65535), (0x0028, 0x0011): ("US", 65535),
                                         P: ("OW", bytes(64))}),
        "dicom_too_large", "Rows and Columns 65535, 64 bytes of PixelData")
    add("dicom-bomb-pixels", ct("b2", set={(0x0028, 0x0010): ("US", 8000), (0x0028, 0x0011): ("US", 8000),
                                           P: ("OW", bytes(64))}),
        "dicom_too_large", "8000 x 8000: each side within 8192, 64 M pixels above 40 M")
    add("dicom-bomb-frames", ct("b3", set={(0x0028, 0x0010): ("US", 4096), (0x0028, 0x0011): ("US", 4096),
                                           (0x0028, 0x0008): ("IS", "400"), P: ("OW", bytes(64))}),
        "dicom_too_large", "4096 x 4096 x 400 frames (13 GB declared, each limit kept), 64 bytes of PixelData")
    add("dicom-bomb-rle", ct("b4", RLE, set={(0x0028, 0x0010): ("US", 4096), (0x0028, 0x0011): ("US", 4096),
                                             (0x0028, 0x0008): ("IS", "400"),
                                             P: ("OB", encapsulated([rle_zeros()] * 400), UNDEFINED)}),
        "dicom_too_large", "RLE, 4096 x 4096 x 400 frames of tiny fragments (13 GB decoded)")
    add("dicom-frames-513", ct("f1", set={(0x0028, 0x0008): ("IS", "513"), (0x0028, 0x0010): ("US", 4),
                                          (0x0028, 0x0011): ("US", 4), P: ("OW", bytes(4 * 4 * 2 * 513))}),
        "dicom_too_large", "4 x 4, NumberOfFrames 513, above dicom.max_frames 512 (full PixelData)")
    add("dicom-frames-100000", ct("f2", set={(0x0028, 0x0008): ("IS", "100000")}),
        "dicom_too_large", "NumberOfFrames 100000")
    add("dicom-frames-zero", ct("f3", set={(0x0028, 0x0008): ("IS", "0")}), "dicom_invalid", "NumberOfFrames 0")
    add("dicom-frames-negative", ct("f4", set={(0x0028, 0x0008): ("IS", "-3")}), "dicom_invalid", "NumberOfFrames -3")
    add("dicom-pixeldata-short", ct("s1", set={P: ("OW", bytes(10))}), "dicom_invalid",
        "24 x 24 declared, 10 bytes of PixelData")
    add("dicom-rows-zero", ct("s2", set={(0x0028, 0x0010): ("US", 0)}), "dicom_invalid", "Rows 0")
    # Missing attributes.
    add("dicom-no-pixeldata", ct("m1", set={P: None}), "dicom_invalid", "a CT image without PixelData")
    add("dicom-no-sop-instance-uid", ct("m2", set={(0x0008, 0x0018): None}), "dicom_invalid", "no SOPInstanceUID")
    add("dicom-no-study-uid", ct("m3", set={(0x0020, 0x000D): None}), "dicom_invalid", "no StudyInstanceUID")
    add("dicom-no-series-uid", ct("m4", set={(0x0020, 0x000E): None}), "dicom_invalid", "no SeriesInstanceUID")
    add("dicom-no-sop-class", ct("m5", set={(0x0008, 0x0016): None}), "dicom_invalid", "no SOPClassUID")
    add("dicom-study-uid-too-long", ct("m6", set={(0x0020, 0x000D): ("UI", "1.2." + "3" * 70)}), "dicom_invalid",
        "StudyInstanceUID of 74 characters")
    add("dicom-plane-without-pixel-spacing",
        ct("m8", set={(0x0020, 0x0032): ("DS", "0\\0\\3"), (0x0020, 0x0037): ("DS", "1\\0\\0\\0\\1\\0"),
                      (0x0020, 0x0052): ("UI", uid("corpus/for"))}),
        "dicom_invalid", "position and orientation but no PixelSpacing (the SEG cannot be written; after inference)")
    add("dicom-no-photometric", ct("m7", set={(0x0028, 0x0004): None}), "dicom_invalid",
        "no PhotometricInterpretation")
    # Unsupported.
    sr = {(0x0008, 0x0016): ("UI", SR_STORAGE), (0x0008, 0x0018): ("UI", uid("sr/sop")), (0x0008, 0x0060): ("CS", "SR"),
          (0x0020, 0x000D): ("UI", uid("corpus/study")), (0x0020, 0x000E): ("UI", uid("sr/series")),
          (0x0040, 0xA040): ("CS", "CONTAINER"), (0x0040, 0xA050): ("CS", "SEPARATE")}
    add("dicom-sr", part10(sr, SR_STORAGE, uid("sr/sop")), "dicom_unsupported", "a Structured Report (no pixels)")
    pdf = {(0x0008, 0x0016): ("UI", PDF_STORAGE), (0x0008, 0x0018): ("UI", uid("pdf/sop")), (0x0008, 0x0060): ("CS", "DOC"),
           (0x0020, 0x000D): ("UI", uid("corpus/study")), (0x0020, 0x000E): ("UI", uid("pdf/series")),
           (0x0042, 0x0011): ("OB", b"%PDF-1.4\n%" + CANARY.encode() + b"\n%%EOF\n"),
           (0x0042, 0x0012): ("LO", "application/pdf")}
    add("dicom-encapsulated-pdf", part10(pdf, PDF_STORAGE, uid("pdf/sop")), "dicom_unsupported",
        "Encapsulated PDF Storage")
    add("dicom-jpeg2000", ct("u1", JPEG2000, set={P: ("OB", encapsulated([b"\xff\x4f\xff\x51" + bytes(60)]), UNDEFINED)}),
        "dicom_unsupported", "JPEG 2000 transfer syntax (1.2.840.10008.1.2.4.90)")
    add("dicom-unknown-transfer-syntax", ct("u2", "1.2.3.999.42"), "dicom_unsupported",
        "a transfer syntax UID nobody knows (1.2.3.999.42), explicit VR LE body")
    add("dicom-htj2k", ct("u3", "1.2.840.10008.1.2.4.201",
                          set={P: ("OB", encapsulated([b"\xff\x4f\xff\x51" + bytes(60)]), UNDEFINED)}),
        "dicom_unsupported", "High-Throughput JPEG 2000 (1.2.840.10008.1.2.4.201)")
    add("dicom-palette-color", ct("u4", set={(0x0028, 0x0004): ("CS", "PALETTE COLOR")}), "dicom_unsupported",
        "PhotometricInterpretation PALETTE COLOR")
    add("dicom-bits-allocated-1", ct("u5", set={(0x0028, 0x0100): ("US", 1), (0x0028, 0x0101): ("US", 1),
                                                (0x0028, 0x0102): ("US", 0)}),
        "dicom_unsupported", "BitsAllocated 1")
    add("dicom-argb-4-samples", ct("u6", set={(0x0028, 0x0002): ("US", 4), (0x0028, 0x0004): ("CS", "ARGB"),
                                              (0x0028, 0x0100): ("US", 8), (0x0028, 0x0101): ("US", 8),
                                              (0x0028, 0x0102): ("US", 7), P: ("OB", bytes(24 * 24 * 4))}),
        "dicom_unsupported", "SamplesPerPixel 4, ARGB")
    add("dicom-rgb-32-bit", ct("u7", set={(0x0028, 0x0002): ("US", 3), (0x0028, 0x0004): ("CS", "RGB"),
                                          (0x0028, 0x0006): ("US", 0),
                                          (0x0028, 0x0100): ("US", 32), (0x0028, 0x0101): ("US", 32),
                                          (0x0028, 0x0102): ("US", 31), P: ("OB", bytes(24 * 24 * 12))}),
        "dicom_unsupported", "RGB with BitsAllocated 32")
    add("dicom-float-pixel-data", ct("u8", set={P: None, (0x7FE0, 0x0008): ("OF", bytes(24 * 24 * 4)),
                                                (0x0028, 0x0100): ("US", 32), (0x0028, 0x0101): None,
                                                (0x0028, 0x0102): None, (0x0028, 0x0103): None}),
        "dicom_unsupported", "Float Pixel Data (7FE0,0008)")
    add("dicom-mono-4-samples", ct("i1", set={(0x0028, 0x0002): ("US", 4), P: ("OW", bytes(24 * 24 * 8))}),
        "dicom_invalid", "SamplesPerPixel 4 with MONOCHROME2")
    add("dicom-bits-stored-20", ct("i2", set={(0x0028, 0x0101): ("US", 20)}), "dicom_invalid",
        "BitsStored 20 with BitsAllocated 16")
    add("dicom-rle-missing-fragments", ct("i3", RLE, set={(0x0028, 0x0008): ("IS", "3"),
                                                          P: ("OB", encapsulated([rle_zeros()]), UNDEFINED)}),
        "dicom_invalid", "RLE, 3 frames declared, 1 fragment")
    add("dicom-rle-corrupt", ct("i4", RLE, set={P: ("OB", encapsulated([b"\x07" + b"\xff" * 63]), UNDEFINED)}),
        "dicom_invalid", "RLE with a corrupt segment header (fails when the frame is decoded)")
    return cases


def rle_zeros() -> bytes:
    """An RLE fragment header with 2 segments whose runs are a few zero bytes (short on purpose)."""
    header = struct.pack("<16I", 2, 64, 68, *([0] * 13))
    return header + b"\x81\x00\x81\x00" + b"\x81\x00\x81\x00"


def mixed_series() -> dict:
    """Instances for the PACS cases of DICOMBadInputTests (pacs/*.dcm): one study, a series of two
    24 x 24 slices, and one series each mixing sizes, frames of reference, and an image with an SR."""
    study = uid("pacs/study")

    def instance(name, series, rows=24, columns=24, frame_of_reference=None, number=1):
        ds = ct_dataset(name, rows, columns)
        ds[(0x0020, 0x000D)] = ("UI", study)
        ds[(0x0020, 0x000E)] = ("UI", uid("pacs/" + series))
        ds[(0x0020, 0x0013)] = ("IS", str(number))
        ds[(0x0020, 0x0052)] = ("UI", frame_of_reference or uid("pacs/for"))
        ds[(0x0020, 0x0032)] = ("DS", f"0\\0\\{number * 3}")
        ds[(0x0020, 0x0037)] = ("DS", "1\\0\\0\\0\\1\\0")
        ds[(0x0028, 0x0030)] = ("DS", "0.8\\0.8")
        ds[(0x0018, 0x0050)] = ("DS", "3")
        return part10(ds, CT_STORAGE, uid(name + "/sop"))

    sr = {(0x0008, 0x0016): ("UI", SR_STORAGE), (0x0008, 0x0018): ("UI", uid("pacs/withsr/sr/sop")),
          (0x0008, 0x0060): ("CS", "SR"), (0x0020, 0x000D): ("UI", study), (0x0020, 0x000E): ("UI", uid("pacs/withsr")),
          (0x0040, 0xA040): ("CS", "CONTAINER"), (0x0040, 0xA050): ("CS", "SEPARATE")}
    return {
        "good-1": instance("pacs/good/1", "good", number=1), "good-2": instance("pacs/good/2", "good", number=2),
        "mixedsize-1": instance("pacs/mixedsize/1", "mixedsize", number=1),
        "mixedsize-2": instance("pacs/mixedsize/2", "mixedsize", rows=32, columns=16, number=2),
        "mixedfor-1": instance("pacs/mixedfor/1", "mixedfor", number=1),
        "mixedfor-2": instance("pacs/mixedfor/2", "mixedfor", frame_of_reference=uid("pacs/other-for"), number=2),
        "withsr-1": instance("pacs/withsr/1", "withsr", number=1),
        "withsr-sr": part10(sr, SR_STORAGE, uid("pacs/withsr/sr/sop")),
    }


# ---------------------------------------------------------------------------------------------
# Cases


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request(rid, image=None, support=None, options=None, ground_truth=None, **extra) -> dict:
    r = {"request_id": rid, "support_set": support if support is not None else {"id": "blobs"},
         "image": image if image is not None else {"png_base64": b64(QUERY)}}
    if options is not None:
        r["options"] = options
    if ground_truth is not None:
        r["ground_truth"] = ground_truth
    r.update(extra)
    return r


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


QUERY = gray8(24, 24, 2)
QUERY_LABEL = label8(24, 24, 2)
VALID_IMAGES = {
    # name: (png bytes, width, height, description)
    "png-gray8": (QUERY, 24, 24, "8-bit gray"),
    "png-gray16": (png([(60 * 257,) if i else (180 * 257,) for i in blob(24, 24, 1)], 24, 24, 0, 16), 24, 24, "16-bit gray"),
    "png-gray1": (png([(0,) if i else (1,) for i in blob(32, 16, 1)], 32, 16, 0, 1), 32, 16, "1-bit gray"),
    "png-gray4-odd-width": (png([(3,) if i else (12,) for i in blob(13, 11)], 13, 11, 0, 4), 13, 11,
                            "4-bit gray, odd width (row padding)"),
    "png-palette": (png([(1,) if i else (0,) for i in blob(20, 28)], 20, 28, 3, 8, palette=[(200, 180, 160), (60, 40, 90)]),
                    20, 28, "8-bit palette"),
    "png-palette-2bit": (png([(2,) if i else (1,) for i in blob(21, 9)], 21, 9, 3, 2,
                             palette=[(0, 0, 0), (200, 180, 160), (60, 40, 90)]), 21, 9, "2-bit palette, odd width"),
    "png-gray-alpha": (png([(60, 255) if i else (180, 128) for i in blob(24, 24)], 24, 24, 4, 8), 24, 24,
                       "8-bit gray + alpha"),
    "png-rgb8": (png([(60, 40, 90) if i else (200, 180, 160) for i in blob(26, 22)], 26, 22, 2, 8), 26, 22, "8-bit RGB"),
    "png-rgba": (png([(60, 40, 90, 255) if i else (200, 180, 160, 0) for i in blob(24, 24)], 24, 24, 6, 8), 24, 24,
                 "8-bit RGBA (transparent background)"),
    "png-rgb16": (png([(60 * 257, 40 * 257, 90 * 257) if i else (200 * 257, 180 * 257, 160 * 257) for i in blob(24, 24)],
                      24, 24, 2, 16), 24, 24, "16-bit RGB"),
    "png-interlaced": (gray8(25, 23, 3, interlace=True), 25, 23, "Adam7-interlaced 8-bit gray"),
    "png-1x1": (png([(128,)], 1, 1, 0, 8), 1, 1, "a 1 x 1 image"),
    "png-3x200": (gray8(3, 200), 3, 200, "a tall, thin 3 x 200 image"),
    "png-trailing-bytes": (QUERY + b"trailing bytes after IEND", 24, 24, "bytes after IEND (ignored)"),
    # A zTXt chunk inflating to 16 MiB, above the decoder's 8 MiB ancillary-chunk limit: the chunk is
    # skipped (a benign libpng error), the image itself is fine.
    "png-ztxt-bomb": (png([(60,) if i else (180,) for i in blob(24, 24)], 24, 24, 0, 8,
                          extra=[(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * (16 << 20), 9))]),
                      24, 24, "a zTXt chunk inflating to 16 MiB (skipped)"),
}


def bad_pngs() -> dict:
    good = QUERY
    idat_at = good.index(b"IDAT") - 4
    length = struct.unpack(">I", good[idat_at:idat_at + 4])[0]
    corrupt = bytearray(good)
    corrupt[idat_at + 8 + length // 2] ^= 0xFF  # flip a byte inside IDAT, keep the old CRC
    bad_zlib = SIGNATURE + ihdr(24, 24, 8, 0) + chunk(b"IDAT", b"this is not a zlib stream" * 4) + chunk(b"IEND", b"")
    short_idat = SIGNATURE + ihdr(24, 24, 8, 0) + chunk(b"IDAT", zlib.compress(b"\x00" + bytes(24))) + chunk(b"IEND", b"")
    tiny = zlib.compress(b"\x00\x00", 9)
    return {
        "png-truncated": (good[:len(good) // 2], "image_decode", "the first half of a valid PNG"),
        "png-header-only": (good[:33], "image_decode", "signature and IHDR, nothing else"),
        "png-signature-only": (SIGNATURE, "image_decode", "the 8 signature bytes"),
        "png-corrupt-crc": (bytes(corrupt), "image_decode", "one IDAT byte flipped (CRC mismatch)"),
        "png-bad-zlib": (bad_zlib, "image_decode", "IDAT with a valid CRC but no zlib stream"),
        "png-short-idat": (short_idat, "image_decode", "24 x 24 declared, one row of pixel data"),
        "png-zero-width": (SIGNATURE + ihdr(0, 24, 8, 0) + chunk(b"IDAT", tiny) + chunk(b"IEND", b""), "image_decode",
                           "IHDR width 0"),
        "png-bad-bit-depth": (SIGNATURE + ihdr(24, 24, 3, 0) + chunk(b"IDAT", tiny) + chunk(b"IEND", b""), "image_decode",
                              "IHDR bit depth 3"),
        "not-a-png": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image_decode", "a GIF header"),
        "png-bomb-dimensions": (SIGNATURE + ihdr(100000, 100000, 8, 0) + chunk(b"IDAT", tiny) + chunk(b"IEND", b""),
                                "image_too_large", "IHDR declares 100000 x 100000 (decompression bomb), tiny IDAT"),
        "png-bomb-pixels": (SIGNATURE + ihdr(16000, 3000, 8, 2) + chunk(b"IDAT", tiny) + chunk(b"IEND", b""),
                            "image_too_large", "16000 x 3000 RGB: each side within 16384, 48 M pixels above 40 M"),
        "png-bomb-max-width": (SIGNATURE + ihdr(0x7FFFFFFF, 1, 8, 0) + chunk(b"IDAT", tiny) + chunk(b"IEND", b""),
                               "image_too_large", "IHDR width 2^31 - 1 (the largest PNG allows)"),
    }


def build_cases() -> list:
    """Each case: dict(name, value (bytes or None), headers, expect, error_result, request_id,
    mask (w, h) for ok, dice, description)."""
    cases = []

    def add(name, value, expect, description, error_result=None, request_id=None, headers=(), mask=None,
            dice=False, key="name"):
        cases.append(dict(name=name, value=value, expect=expect, description=description,
                          error_result=error_result, request_id=request_id, headers=list(headers),
                          mask=mask, dice=dice, key=key))

    def req(name, expect, description, **fields):
        """A JSON request whose request_id is the case name (usable, so an error gives a result)."""
        headers = fields.pop("headers", ())
        mask = fields.pop("mask", None)
        dice = fields.pop("dice", False)
        value = dumps(request(name, **fields))
        add(name, value, expect, description, error_result=(expect != "ok"), request_id=name,
            headers=headers, mask=mask, dice=dice)

    q64 = b64(QUERY)
    # --- Not JSON, not an object (invalid_json, no usable request_id) ---------------------------
    add("tombstone", None, "invalid_json", "null value (tombstone)", error_result=False)
    add("empty-value", b"", "invalid_json", "empty, non-null value", error_result=False)
    add("not-json", f"hello {CANARY} this is free text".encode(), "invalid_json", "plain text", error_result=False)
    full = dumps(request("truncated-json"))
    add("truncated-json", full[:len(full) // 2], "invalid_json", "a valid request cut in the middle of the base64",
        error_result=False)
    add("truncated-json-tail", full[:-1], "invalid_json", "a valid request without its closing brace", error_result=False)
    add("json-array", dumps([request("json-array")]), "invalid_json", "a request wrapped in an array", error_result=False)
    add("json-string", b'"request_id"', "invalid_json", "a JSON string at the top level", error_result=False)
    add("json-null", b"null", "invalid_json", "the JSON literal null", error_result=False)
    add("json-number", b"42", "invalid_json", "a JSON number at the top level", error_result=False)
    add("trailing-garbage", dumps(request("trailing-garbage")) + b" }", "invalid_json", "a valid request followed by ' }'",
        error_result=False)
    add("two-objects", dumps(request("two-objects")) + dumps(request("two-objects-b")), "invalid_json",
        "two requests concatenated", error_result=False)
    add("trailing-comma", dumps(request("trailing-comma"))[:-1] + b",}", "invalid_json",
        "a trailing comma before the closing brace (not JSON)", error_result=False)
    add("single-quotes", dumps(request("single-quotes")).replace(b'"', b"'"), "invalid_json", "single-quoted JSON",
        error_result=False)
    add("comment", b"/* " + CANARY.encode() + b" */" + dumps(request("comment")), "invalid_json",
        "a /* comment */ before the object", error_result=False)
    add("nan-literal", dumps(request("nan-literal", options={"threshold": 0.5})).replace(b"0.5", b"NaN"),
        "invalid_json", "options.threshold: NaN (not a JSON number)", error_result=False)
    add("infinity-literal", dumps(request("infinity-literal", options={"threshold": 0.5})).replace(b"0.5", b"Infinity"),
        "invalid_json", "options.threshold: Infinity", error_result=False)
    add("number-overflow", dumps(request("number-overflow", options={"threshold": 0.5})).replace(b"0.5", b"1e400"),
        "invalid_json", "options.threshold: 1e400 (beyond a double: the parser refuses it)", error_result=False)
    add("non-utf8", dumps(request("non-utf8", extra_text="x"))
        .replace(b'"x"', b'"\xff\xfe' + CANARY.encode() + b'\xc3"'), "invalid_json",
        "bytes that are not UTF-8 inside a string", error_result=False)
    add("utf16-json", dumps(request("utf16-json")).decode().encode("utf-16-le"), "invalid_json",
        "a valid request encoded as UTF-16 (JSON on the wire is UTF-8)", error_result=False)
    add("nul-byte", dumps(request("nul-byte")) + b"\x00", "invalid_json", "a NUL byte after the object",
        error_result=False)
    add("control-char-in-string", dumps(request("control-char-in-string", note="a")).replace(b'"a"', b'"a\nb"'),
        "invalid_json", "a raw newline inside a string", error_result=False)
    add("deep-nesting", b"[" * 20000 + b"]" * 20000, "invalid_json", "arrays nested 20000 deep", error_result=False)
    deep = dumps(request("deep-nesting-field"))[:-1] + b',"x":' + b"[" * 600 + b"]" * 600 + b"}"
    add("deep-nesting-field", deep, "invalid_json",
        "a request with a field nested 600 deep (512 levels at most)", error_result=False)
    # --- Schema violations (invalid_request) --------------------------------------------------
    shallow = dumps(request("nested-unknown-field"))[:-1] + b',"x":' + b"[" * 100 + b"]" * 100 + b"}"
    add("nested-unknown-field", shallow, "invalid_request", "an unknown field nested 100 deep",
        error_result=True, request_id="nested-unknown-field")
    add("duplicate-keys", dumps(request("duplicate-keys", options={"threshold": 0.5}))
        .replace(b'"threshold":0.5', b'"threshold":0.5,"threshold":0.9'), "invalid_request",
        "options.threshold given twice", error_result=True, request_id="duplicate-keys")
    add("duplicate-request-id", b'{"request_id":"duplicate-request-id",' + dumps(request("duplicate-request-id-b"))[1:],
        "invalid_request", "request_id given twice (no usable request_id)", error_result=False)
    add("duplicate-keys-escaped", dumps(request("duplicate-keys-escaped"))[:-1] + b',"\\u0069mage":{"store_path":"queries/q.png"}}',
        "invalid_request", "image given twice, once as \\u0069mage", error_result=True, request_id="duplicate-keys-escaped")
    add("missing-request-id", dumps({"support_set": {"id": "blobs"}, "image": {"png_base64": q64}}), "invalid_request",
        "no request_id", error_result=False)
    add("missing-support-set", dumps({"request_id": "missing-support-set", "image": {"png_base64": q64}}),
        "invalid_request", "no support_set", error_result=True, request_id="missing-support-set")
    add("missing-image", dumps({"request_id": "missing-image", "support_set": {"id": "blobs"}}), "invalid_request",
        "no image", error_result=True, request_id="missing-image")
    req("extra-field", "invalid_request", "an unknown top-level field with free text", comment=f"{CANARY} free text")
    req("extra-field-in-options", "invalid_request", "an unknown field in options",
        options={"threshold": 0.5, "iterations": 3})
    req("extra-field-long-name", "invalid_request", "an unknown field whose name is 200 characters of free text",
        **{CANARY + "x" * 192: 1})
    add("request-id-number", dumps(request(42)), "invalid_request", "request_id is a number", error_result=False)
    add("request-id-null", dumps(request(None)), "invalid_request", "request_id is null", error_result=False)
    add("request-id-empty", dumps(request("")), "invalid_request", "request_id is empty", error_result=False)
    add("request-id-bad-chars", dumps(request(f"bad id {CANARY}/../x")), "invalid_request",
        "request_id with spaces and slashes", error_result=False)
    add("request-id-unicode", dumps(request("r\u00e9sum\u00e9-" + CANARY)), "invalid_request",
        "request_id with non-ASCII letters", error_result=False)
    add("request-id-control", dumps(request(f"ab\n\u0000{CANARY}")), "invalid_request",
        "request_id with a newline and a NUL (log injection)", error_result=False)
    add("request-id-too-long", dumps(request(CANARY + "a" * 200)), "invalid_request", "request_id of 208 characters",
        error_result=False)
    add("request-id-oversized", dumps(request(CANARY + "a" * 50_000)), "invalid_request",
        "request_id of 50008 characters", error_result=False)
    req("support-set-string", "invalid_request", "support_set is a string", support="blobs")
    req("support-id-number", "invalid_request", "support_set.id is a number", support={"id": 7})
    req("support-id-traversal", "invalid_request", "support_set.id is ../" + CANARY, support={"id": "../" + CANARY})
    req("support-id-dotdot", "invalid_request", "support_set.id is ..", support={"id": ".."})
    req("support-id-oversized", "invalid_request", "support_set.id of 20008 characters",
        support={"id": CANARY + "a" * 20_000})
    req("support-version-traversal", "invalid_request", "support_set.version is ../../blobs/1",
        support={"id": "blobs", "version": "../../blobs/1"})
    req("support-version-dot", "invalid_request", "support_set.version is .", support={"id": "blobs", "version": "."})
    req("support-version-slash", "invalid_request", "support_set.version is 1/images",
        support={"id": "blobs", "version": "1/images"})
    req("support-extra-field", "invalid_request", "an unknown field in support_set",
        support={"id": "blobs", "path": "/etc"})
    req("image-both-sources", "invalid_request", "image has png_base64 and store_path",
        image={"png_base64": q64, "store_path": "queries/q.png"})
    req("image-no-source", "invalid_request", "image is {}", image={})
    req("image-base64-number", "invalid_request", "image.png_base64 is a number", image={"png_base64": 12345})
    req("image-is-string", "invalid_request", "image is a string", image=q64[:40])
    req("store-path-traversal", "invalid_request", "image.store_path is ../../" + CANARY + "/etc/passwd",
        image={"store_path": "../../" + CANARY + "/etc/passwd"})
    req("store-path-absolute", "invalid_request", "image.store_path is /etc/passwd", image={"store_path": "/etc/passwd"})
    req("store-path-missing", "invalid_request", "image.store_path names no file",
        image={"store_path": "queries/" + CANARY + ".png"})
    req("store-path-directory", "invalid_request", "image.store_path names a directory",
        image={"store_path": "queries"})
    req("store-path-oversized", "invalid_request", "image.store_path of 2000 characters",
        image={"store_path": "q/" * 1000})
    req("options-array", "invalid_request", "options is an array", options=[1, 2])
    req("threshold-one", "invalid_request", "options.threshold = 1 (exclusive maximum)", options={"threshold": 1})
    req("threshold-negative", "invalid_request", "options.threshold = -0.1", options={"threshold": -0.1})
    req("threshold-nan-string", "invalid_request", "options.threshold = \"NaN\"", options={"threshold": "NaN"})
    req("threshold-bool", "invalid_request", "options.threshold = true", options={"threshold": True})
    req("support-size-zero", "invalid_request", "options.support_size = 0", options={"support_size": 0})
    req("support-size-257", "invalid_request", "options.support_size = 257 (above 256)", options={"support_size": 257})
    req("support-size-fraction", "invalid_request", "options.support_size = 2.5", options={"support_size": 2.5})
    req("support-size-huge", "invalid_request", "options.support_size = 1e300", options={"support_size": 1e300})
    req("ensemble-33", "invalid_request", "options.ensemble = 33 (above 32)", options={"ensemble": 33})
    req("ensemble-string", "invalid_request", "options.ensemble = \"2\"", options={"ensemble": "2"})
    req("seed-negative", "invalid_request", "options.seed = -1", options={"seed": -1})
    req("seed-2-64", "invalid_request", "options.seed = 2^64", options={"seed": 2 ** 64})
    req("seed-bigint", "invalid_request", "options.seed with 40 digits", options={"seed": 10 ** 40})
    req("ground-truth-missing-png", "invalid_request", "ground_truth is {}", ground_truth={})
    req("ground-truth-size-mismatch", "invalid_request", "ground_truth 10 x 10 for a 24 x 24 image",
        ground_truth={"png_base64": b64(label8(10, 10))})
    # --- Image data (image_decode, image_too_large) --------------------------------------------
    req("base64-garbage", "image_decode", "image.png_base64 is not base64",
        image={"png_base64": f"!!! {CANARY} not base64 ***"})
    req("base64-empty", "image_decode", "image.png_base64 is empty (an empty image)", image={"png_base64": ""})
    req("base64-urlsafe", "image_decode", "image.png_base64 in the URL-safe alphabet (- and _)",
        image={"png_base64": base64.urlsafe_b64encode(VALID_IMAGES["png-rgb16"][0]).decode()})
    req("base64-line-breaks", "image_decode", "image.png_base64 with MIME line breaks",
        image={"png_base64": base64.encodebytes(QUERY).decode()})
    req("base64-bad-padding", "image_decode", "image.png_base64 with its padding removed and one character cut",
        image={"png_base64": q64.rstrip("=")[:-1]})
    for name, (data, code, description) in bad_pngs().items():
        req(name, code, description, image={"png_base64": b64(data)})
    req("ground-truth-garbage", "image_decode", "ground_truth.png_base64 is not base64",
        ground_truth={"png_base64": "%%%" + CANARY})
    req("ground-truth-not-png", "image_decode", "ground_truth is base64 of text",
        ground_truth={"png_base64": b64(b"not a png " + CANARY.encode())})
    # --- DICOM (image.dicom_base64, image.dicomweb, output) ----------------------------------------
    dicom_ok = ct("dicom-ok")
    d64 = b64(dicom_ok)
    web = {"server": "pacs", "study_uid": uid("corpus/study"), "series_uid": uid("corpus/series")}
    for name, data, code, description in bad_dicoms():
        req(name, code, description, image={"dicom_base64": b64(data)})
    req("dicom-base64-garbage", "image_decode", "image.dicom_base64 is not base64",
        image={"dicom_base64": f"!!! {CANARY} not base64 ***"})
    req("dicom-base64-empty", "image_decode", "image.dicom_base64 is empty", image={"dicom_base64": ""})
    urlsafe = base64.urlsafe_b64encode(dicom_ok + b"\xfb\xef\xff" * 4).decode()  # bytes that need - and _
    assert "-" in urlsafe and "_" in urlsafe
    req("dicom-base64-urlsafe", "image_decode", "image.dicom_base64 in the URL-safe alphabet", image={"dicom_base64": urlsafe})
    req("dicom-base64-line-breaks", "image_decode", "image.dicom_base64 with MIME line breaks",
        image={"dicom_base64": base64.encodebytes(dicom_ok).decode()})
    req("dicom-base64-number", "invalid_request", "image.dicom_base64 is a number", image={"dicom_base64": 7})
    req("dicom-and-png", "invalid_request", "image has dicom_base64 and png_base64",
        image={"dicom_base64": d64, "png_base64": q64})
    req("dicom-and-dicomweb", "invalid_request", "image has dicom_base64 and dicomweb",
        image={"dicom_base64": d64, "dicomweb": web})
    req("dicom-ground-truth", "invalid_request", "ground_truth with a DICOM image",
        image={"dicom_base64": d64}, ground_truth={"png_base64": b64(QUERY_LABEL)})
    req("png-with-output", "invalid_request", "output with a PNG image", output={"stow": False})
    req("dicom-output-stow-string", "invalid_request", "output.stow is \"yes\"", image={"dicom_base64": d64},
        output={"stow": "yes"})
    req("dicom-output-unknown-field", "invalid_request", "an unknown field in output (a URL)", image={"dicom_base64": d64},
        output={"url": "http://" + CANARY + ".example/stow"})
    req("dicom-output-server-bad-name", "invalid_request", "output.dicomweb_server is a URL", image={"dicom_base64": d64},
        output={"dicomweb_server": "http://" + CANARY + ".example/"})
    req("dicom-output-server-not-configured", "invalid_request",
        "output.dicomweb_server names no configured server (found after inference)", image={"dicom_base64": d64},
        output={"dicomweb_server": "nosuchpacs"})
    req("dicom-output-stow-true-no-server", "invalid_request", "output.stow true with no server to store on",
        image={"dicom_base64": d64}, output={"stow": True})

    def webcase(name, description, **fields):
        ref = dict(web)
        for k, v in fields.items():
            if v is None:
                ref.pop(k, None)
            else:
                ref[k] = v
        req(name, "invalid_request", description, image={"dicomweb": ref})

    webcase("dicomweb-server-not-configured", "image.dicomweb.server names no configured server", server="nosuchpacs")
    webcase("dicomweb-server-url", "image.dicomweb.server is a URL", server="http://" + CANARY + ".example/dicom-web")
    webcase("dicomweb-server-missing", "no image.dicomweb.server", server=None)
    webcase("dicomweb-study-uid-letters", "study_uid with letters", study_uid="1.2.abc." + CANARY)
    webcase("dicomweb-study-uid-too-long", "study_uid of 65 characters", study_uid="1.2." + "3" * 61)
    webcase("dicomweb-study-uid-number", "study_uid is a number", study_uid=1.2)
    webcase("dicomweb-series-uid-leading-zero", "series_uid with a component 02", series_uid="1.02.3")
    webcase("dicomweb-series-uid-empty-component", "series_uid with an empty component", series_uid="1..3")
    webcase("dicomweb-series-uid-missing", "no series_uid", series_uid=None)
    webcase("dicomweb-instance-uids-empty", "instance_uids is []", instance_uids=[])
    webcase("dicomweb-instance-uids-duplicated", "instance_uids repeats a UID", instance_uids=["1.2.3", "1.2.4", "1.2.3"])
    webcase("dicomweb-instance-uids-numbers", "instance_uids holds numbers", instance_uids=[1, 2])
    webcase("dicomweb-instance-uids-string", "instance_uids is a string", instance_uids="1.2.3")
    webcase("dicomweb-instance-uids-invalid", "instance_uids holds a UID with a trailing dot", instance_uids=["1.2.3."])
    webcase("dicomweb-instance-uids-513", "instance_uids with 513 entries (above dicom.max_frames)",
            instance_uids=[f"1.2.3.{i}" for i in range(513)])
    webcase("dicomweb-unknown-field", "an unknown field in image.dicomweb (a URL)", url="http://" + CANARY + ".example/")
    req("dicomweb-is-string", "invalid_request", "image.dicomweb is a string", image={"dicomweb": "pacs"})
    # --- Support sets --------------------------------------------------------------------------
    req("unknown-support-set", "support_set_not_found", "no such set in the store", support={"id": "nosuchset"})
    req("unknown-version", "support_set_not_found", "no such version of blobs", support={"id": "blobs", "version": "9"})
    req("no-latest", "support_set_not_found", "a set without LATEST, no version asked", support={"id": "nolatest"})
    req("manifest-directory", "support_set_invalid", "support.json is a directory", support={"id": "dirmanifest"})
    req("support-set-bad-latest", "support_set_invalid", "LATEST names ../blobs/1", support={"id": "badlatest"})
    req("support-set-malformed", "support_set_invalid", "support.json is truncated JSON", support={"id": "badmanifest"})
    req("support-set-empty-labels", "support_set_invalid", "every label is all zero", support={"id": "emptylabels"})
    req("support-set-no-entries", "support_set_invalid", "support.json lists no entries", support={"id": "noentries"})
    req("support-set-missing-file", "support_set_invalid", "a label file is missing", support={"id": "missingfile"})
    req("support-set-corrupt-image", "support_set_invalid", "an entry image is a truncated PNG",
        support={"id": "corruptimage"})
    req("support-set-escape", "support_set_invalid", "an entry path leaves the set directory", support={"id": "escape"})
    req("support-size-above-set", "invalid_options", "options.support_size = 100 for a set of 4",
        options={"support_size": 100})
    # --- Valid inputs (must give masks) --------------------------------------------------------
    for name, (data, w, h, description) in VALID_IMAGES.items():
        req(name, "ok", description, image={"png_base64": b64(data)}, mask=(w, h))
    req("dicom-ok", "ok", "a 24 x 24 CT image inline, SEG returned inline", image={"dicom_base64": d64}, mask=(24, 24))
    req("dicom-ok-stow-false", "ok", "the same image with output.stow false", image={"dicom_base64": d64},
        output={"stow": False}, mask=(24, 24))
    req("store-path-ok", "ok", "image read from the store (queries/q.png, 30 x 20)", image={"store_path": "queries/q.png"},
        mask=(30, 20))
    req("nolatest-explicit-version", "ok", "the set without LATEST, version 1 asked", support={"id": "nolatest", "version": "1"},
        mask=(24, 24))
    req("ground-truth-ok", "ok", "ground truth of the image's size: the result carries dice",
        ground_truth={"png_base64": b64(QUERY_LABEL)}, mask=(24, 24), dice=True)
    req("options-full", "ok", "every option at a bound: support_size 4, ensemble 32, seed 2^53, threshold 0",
        options={"support_size": 4, "ensemble": 32, "seed": 2 ** 53, "threshold": 0}, mask=(24, 24))
    req("options-subsets", "ok", "support_size 2, ensemble 3, seed 7", options={"support_size": 2, "ensemble": 3, "seed": 7},
        mask=(24, 24))
    add("options-null", dumps({"request_id": "options-null", "support_set": {"id": "blobs", "version": None},
                               "image": {"png_base64": q64}, "options": None, "ground_truth": None}),
        "ok", "options, ground_truth and support_set.version null: absent, defaults used", error_result=False,
        request_id="options-null", mask=(24, 24))
    add("utf8-bom", b"\xef\xbb\xbf" + dumps(request("utf8-bom")), "ok", "a UTF-8 byte order mark before the object",
        error_result=False, request_id="utf8-bom", mask=(24, 24))
    add("whitespace", b" \r\n\t" + json.dumps(request("whitespace"), indent=2).encode() + b"\n\n", "ok",
        "pretty-printed with surrounding whitespace", error_result=False, request_id="whitespace", mask=(24, 24))
    add("escaped-strings", dumps(request("escaped-strings")).replace(b'"blobs"', b'"\\u0062lobs"')
        .replace(b'"request_id"', b'"request\\u005fid"'), "ok", "keys and values with \\u escapes",
        error_result=False, request_id="escaped-strings", mask=(24, 24))
    # --- Headers ---------------------------------------------------------------------------------
    req("header-binary", "ok", "a header with non-UTF-8 bytes and one with an empty value", mask=(24, 24),
        headers=[{"name": "x-binary", "hex": "fffe00c328"}, {"name": "x-empty", "value": ""}])
    req("many-headers", "ok", "200 small headers (all copied to the result)", mask=(24, 24),
        headers=[{"name": f"x-h{i}", "value": f"value-{i}"} for i in range(200)])
    req("huge-header", "ok", "one 600 kB header (not copied to the result)", mask=(24, 24),
        headers=[{"name": "traceparent", "value": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                 {"name": "x-padding", "fill": "A", "length": 600_000}])
    # Records as large as a producer may send: value + key + headers just under 1 MB. The result
    # and the dead letter would exceed it if every header were copied.
    for name, expect in (("huge-header-near-limit", "ok"), ("huge-header-near-limit-bad", "invalid_request")):
        value = dumps(request(name, **({"comment": "x"} if expect != "ok" else {})))
        filler = MAX_RECORD_BYTES - 150 - len(value) - len(name)
        add(name, value, expect,
            f"a {filler} byte header: key + value + headers just under 1 MB", error_result=(expect != "ok"),
            request_id=name, headers=[{"name": "x-padding", "fill": "B", "length": filler}],
            mask=(24, 24) if expect == "ok" else None)
    add("huge-header-tombstone", None, "invalid_json", "a null value with a 900 kB header", error_result=False,
        headers=[{"name": "x-padding", "fill": "C", "length": 900_000}])
    add("no-key", dumps(request("no-key")), "ok", "a record without a key", error_result=False, request_id="no-key",
        mask=(24, 24), key=None)
    return cases


def pacs_cases() -> list:
    """Cases of DICOMBadInputTests: the worker has DICOMweb server "pacs" (a real Orthanc holding
    pacs/*.dcm) and "rejecting" (a scripted server whose STOW-RS answers 409 with a
    FailedSOPSequence). Same fields as the inline cases."""
    study = uid("pacs/study")
    cases = []

    def case(name, expect, description, reference, output=None, slices=None):
        image = {"dicomweb": dict({"server": "pacs", "study_uid": study}, **reference)}
        value = dumps(request(name, image=image, **({"output": output} if output else {})))
        cases.append(dict(name=name, value=value, expect=expect, description=description,
                          error_result=(expect != "ok"), request_id=name, headers=[], mask=None, dice=False, key="name",
                          slices=slices))

    good = uid("pacs/good")
    case("pacs-unknown-study", "dicom_not_found", "a study the PACS does not hold",
         {"study_uid": uid("pacs/nostudy"), "series_uid": good})
    case("pacs-unknown-series", "dicom_not_found", "a series the study does not hold", {"series_uid": uid("pacs/noseries")})
    case("pacs-unknown-instance", "dicom_not_found", "instance_uids names an instance the PACS does not hold",
         {"series_uid": good, "instance_uids": [uid("pacs/noinstance")]})
    case("pacs-instance-of-other-series", "dicom_not_found", "instance_uids names an instance of another series",
         {"series_uid": good, "instance_uids": [uid("pacs/mixedsize/1/sop")]})
    case("pacs-unknown-server", "invalid_request", "image.dicomweb.server is not configured",
         {"server": "elsewhere", "series_uid": good})
    case("pacs-mixed-size", "dicom_unsupported", "a series of a 24 x 24 and a 32 x 16 instance",
         {"series_uid": uid("pacs/mixedsize")})
    case("pacs-mixed-frame-of-reference", "dicom_unsupported", "a series whose instances have different frames of reference",
         {"series_uid": uid("pacs/mixedfor")})
    case("pacs-series-with-sr", "dicom_unsupported", "a series holding an image and a Structured Report",
         {"series_uid": uid("pacs/withsr")})
    case("pacs-stow-rejected", "dicom_store_rejected",
         "the SEG goes to output.dicomweb_server \"rejecting\", whose STOW-RS answers 409 + FailedSOPSequence (272)",
         {"series_uid": good, "instance_uids": [uid("pacs/good/1/sop")]}, output={"dicomweb_server": "rejecting"})
    case("pacs-ok", "ok", "the good series (2 slices): SEG stored on the PACS", {"series_uid": good}, slices=2)
    return cases


SENTINEL = {"name": "sentinel", "expect": "ok", "mask": [24, 24]}


# ---------------------------------------------------------------------------------------------


README_HEAD = """# Bad-input corpus for `serve`

Generated by `Scripts/make_bad_requests.py` (Python standard library, deterministic): do not edit
by hand, change the script and rerun it. `Tests/WorkerIntegrationTests/BadInputTests.swift` starts a
Tansu broker and one `universeg-worker serve` with `store/` as its support-set store, sends every
case below to `universeg.requests` (key = case name unless the manifest says `"key": null`), then a
valid sentinel request, and checks for each case:

- an error case: exactly one dead-letter record whose `universeg.error.code` header is the expected
  code, with a reason, the original key and value, and the original headers (or, when the record
  would exceed 1 MB with them, a `universeg.headers.dropped` count); and a status "error" result
  with the same code exactly when the table says so (when the request has a usable request_id),
  none otherwise;
- an ok case: exactly one "ok" result whose mask PNG has the image's original size (and `dice` when
  ground truth was sent), no dead letter;
- afterwards: the worker is still running, the group's committed offsets reach the end of every
  partition, no result record carries more than 64 KiB of copied headers, and neither the worker's
  log nor any error reason contains image base64 or the marker `ZZCANARY` that the corpus puts in
  free-text positions.

## Files

- `manifest.json`: `cases` (in sending order) and `sentinel`. Per case: `name`, `value` (a file
  under `values/`, or null for a tombstone), `key` (the case name, or null for no key), `headers`
  (`{"name", "value"}` text, `{"name", "hex"}` bytes, or `{"name", "fill", "length"}`: `fill`
  repeated to `length` bytes, so large headers need no file), `expect` (an error code or "ok"),
  `error_result` (whether a status "error" result is expected), `request_id` (the id results carry),
  `mask` ([width, height] for ok cases), `dice` (ok cases with ground truth), `description`.
- `values/NAME.bin`: the exact bytes of each record value.
- `store/`: the support-set store. `blobs` (4 entries of 24 x 24, LATEST 1) is the valid set;
  `badmanifest` (truncated support.json), `emptylabels` (every label zero), `noentries`,
  `missingfile` (a label file missing), `corruptimage` (a truncated entry PNG), `escape` (an entry
  path with `..`), `badlatest` (LATEST names a path), `nolatest` (no LATEST), `dirmanifest`
  (support.json is a directory); `queries/q.png` (30 x 20) for `image.store_path`.

- `pacs/`: DICOM instances for the PACS cases (below), uploaded to a throwaway Orthanc.

The weights are not part of the corpus: the test writes small random weights (16 x 16 input).

DICOM objects are encoded by hand by the script (explicit VR little endian, deterministic UIDs
under 2.25, `ZZCANARY` in PatientName/PatientID so that patient data in a log or reason is caught).
The inline cases (`image.dicom_base64`, request-schema errors around `image.dicomweb` and `output`)
are in the table below and run like every other case, with no DICOMweb server configured; they
also run without Kafka through `RequestProcessor` (Tests/SegServiceTests/BadInputCorpusTests.swift).

## Cases

| # | name | expect | error result | what |
|---|---|---|---|---|
"""

README_PACS = """
## PACS cases

`manifest.json` `pacs.cases` (same fields), run by
`Tests/WorkerIntegrationTests/DICOMBadInputTests.swift`: a Tansu broker, a real Orthanc 1.10 with
the DICOMweb plugin holding `pacs/*.dcm` (configured as DICOMweb server `pacs`), and a scripted
HTTP server configured as `rejecting` whose STOW-RS answers 409 with a FailedSOPSequence
(FailureReason 272); the only scripted case is `pacs-stow-rejected`. Instances in `pacs/`: series
`good` (two 24 x 24 slices), `mixedsize` (24 x 24 and 32 x 16), `mixedfor` (two frames of
reference), `withsr` (an image and an SR), all in one study.

| # | name | expect | error result | what |
|---|---|---|---|---|
"""


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/WorkerIntegrationTests/Fixtures/bad-requests")
    for sub in ("values", "store", "pacs"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    (out / "values").mkdir(parents=True)
    write_store(out / "store")
    (out / "pacs").mkdir()
    for name, data in mixed_series().items():
        (out / "pacs" / f"{name}.dcm").write_bytes(data)
    cases = build_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    manifest_cases = []
    table = []
    for i, c in enumerate(cases, 1):
        value_file = None
        if c["value"] is not None:
            value_file = f"values/{c['name']}.bin"
            (out / value_file).write_bytes(bytes(c["value"]))
        entry = {"name": c["name"], "value": value_file, "key": c["name"] if c["key"] == "name" else None,
                 "headers": c["headers"], "expect": c["expect"],
                 "error_result": bool(c["error_result"]) if c["expect"] != "ok" else False,
                 "request_id": c["request_id"], "description": c["description"]}
        if c["expect"] == "ok":
            entry["mask"] = list(c["mask"])
            entry["dice"] = c["dice"]
        manifest_cases.append(entry)
        table.append(f"| {i} | `{c['name']}` | {c['expect']} | {'yes' if entry['error_result'] else '-'} | "
                     f"{c['description'].replace('|', '/')} |")
    pacs_manifest = []
    pacs_table = []
    for i, c in enumerate(pacs_cases(), 1):
        value_file = f"values/{c['name']}.bin"
        assert c["name"] not in names
        (out / value_file).write_bytes(c["value"])
        entry = {"name": c["name"], "value": value_file, "key": c["name"], "headers": [], "expect": c["expect"],
                 "error_result": bool(c["error_result"]), "request_id": c["request_id"], "description": c["description"]}
        if c["slices"]:
            entry["slices"] = c["slices"]
        pacs_manifest.append(entry)
        pacs_table.append(f"| {i} | `{c['name']}` | {c['expect']} | {'yes' if entry['error_result'] else '-'} | "
                          f"{c['description'].replace('|', '/')} |")
    manifest = {"format": "universeg.bad-requests.v1", "canary": CANARY, "store": "store",
                "pacs": {"files": sorted(f"pacs/{n}.dcm" for n in mixed_series()), "cases": pacs_manifest},
                "cases": manifest_cases,
                "sentinel": {"name": "sentinel", "value": "values/sentinel.bin", "key": "sentinel",
                             "request_id": "sentinel", "mask": [24, 24]}}
    (out / "values/sentinel.bin").write_bytes(dumps(request("sentinel")))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    codes = {}
    for c in manifest_cases:
        codes[c["expect"]] = codes.get(c["expect"], 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    dicom_count = sum(1 for c in manifest_cases if c["name"].startswith(("dicom", "png-with-output")))
    (out / "README.md").write_text(README_HEAD + "\n".join(table) + f"\n\n{len(cases)} cases: {summary}"
                                   + f" ({dicom_count} of them DICOM).\n" + README_PACS + "\n".join(pacs_table) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(cases)} cases ({summary}), {len(pacs_manifest)} PACS cases; {total} bytes in {out}")


if __name__ == "__main__":
    main()
