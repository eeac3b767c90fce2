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

The weights are not part of the corpus: the test writes small random weights (16 x 16 input).

## Cases

| # | name | expect | error result | what |
|---|---|---|---|---|
"""


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/WorkerIntegrationTests/Fixtures/bad-requests")
    for sub in ("values", "store"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    (out / "values").mkdir(parents=True)
    write_store(out / "store")
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
    manifest = {"format": "universeg.bad-requests.v1", "canary": CANARY, "store": "store",
                "cases": manifest_cases,
                "sentinel": {"name": "sentinel", "value": "values/sentinel.bin", "key": "sentinel",
                             "request_id": "sentinel", "mask": [24, 24]}}
    (out / "values/sentinel.bin").write_bytes(dumps(request("sentinel")))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    codes = {}
    for c in manifest_cases:
        codes[c["expect"]] = codes.get(c["expect"], 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    (out / "README.md").write_text(README_HEAD + "\n".join(table) + f"\n\n{len(cases)} cases: {summary}.\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(cases)} cases ({summary}); {total} bytes in {out}")


if __name__ == "__main__":
    main()
