#!/usr/bin/env python3
"""Writes the DICOM fixtures of Tests/SegDICOMTests into OUTDIR (pydicom, highdicom, DCMTK's command-line codecs).

Every pixel value follows a formula that the Swift tests compute independently (pixel (r, c) of frame/slice k):

  ct_k.dcm        CT, 128x128 int16, explicit VR LE, slice k of 4:  stored = (7r + 13c + 31k) % 3000 - 1000,
                  RescaleSlope 0.5, RescaleIntercept -100; IPP (-64, -64, -10 + 2.5k), InstanceNumber 4 - k
                  (instance numbers run against the positions), FoR, IOP axial, PixelSpacing 0.8.
  ct512.dcm       CT, 512x512 int16, same formula with k = 0 (timings).
  ct_0_implicit.dcm / ct_0_bigendian.dcm   ct_0 in implicit VR LE / explicit VR BE (dcmconv).
  ct_0_rle.dcm / ct_0_jpegll.dcm / ct_0_jpegls.dcm   ct_0 as RLE / JPEG lossless SV1 / JPEG-LS lossless.
  us.dcm          US, 128x96 (rows x columns) uint8 MONOCHROME2, no FoR: stored = (r + 2c) % 256,
                  PatientOrientation A\\F.
  us_jpeg.dcm     us.dcm as JPEG baseline (lossy).
  mr12.dcm        MR, 64x64, BitsAllocated 16, BitsStored 12, HighBit 11, unsigned: stored = (5r + 3c) % 4096,
                  with 0xA000 set in the unused high bits.
  mr12_jpegext.dcm  mr12 without the high-bit garbage, JPEG extended (12-bit, lossy).
  signed12.dcm    BitsStored 12, HighBit 11, signed: stored = (5r + 3c) % 4096 - 2048, raw = (stored & 0xFFF) | 0x5000.
  shifted.dcm     BitsStored 12, HighBit 15, unsigned: stored = (5r + 3c) % 4096, raw = stored << 4.
  mono1.dcm       SC, 64x64 uint16 MONOCHROME1, BitsStored 10: stored = (3r + c) % 1024 (decoded: 1023 - stored).
  rgb.dcm / rgb_planar.dcm   SC, 64x64 RGB 8-bit, PlanarConfiguration 0 / 1: R = (4r) % 256, G = (4c) % 256,
                  B = (2r + 2c) % 256.
  rgb_rle.dcm / rgb_jpeg.dcm   rgb.dcm as RLE / JPEG baseline (YBR_FULL_422, lossy).
  ybr_full.dcm    SC, 64x64 YBR_FULL: Y = (r + 3c) % 256, Cb = Cr = 128.
  ybr_422.dcm     SC, 64x64 native YBR_FULL_422: the same Y, stored Y1 Y2 Cb Cr per pixel pair.
  multiframe.dcm  Enhanced CT-like, 3 frames of 32x48 int16: stored = (r + 2c + 100f) % 1000 - 500, shared
                  PixelValueTransformation slope 2 intercept -50, per-frame PlanePosition (0, 0, 5f).
  j2k.dcm         ct_0 relabelled as JPEG 2000 with a dummy code stream (the codec is never reached).
  hd_seg.dcm      highdicom BINARY SEG over ct_0..ct_3, segment 1 "Liver": mask = 1 where (r + c + k) % 5 == 0.
  bad/*.dcm       malformed inputs, see make_bad().
"""
import os
import itertools
import shutil
import struct
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid)

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
US = "1.2.840.10008.5.1.4.1.1.6.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
SC = "1.2.840.10008.5.1.4.1.1.7"
SR = "1.2.840.10008.5.1.4.1.1.88.22"

_uids = itertools.count(1)


def new_uid():
    """The next UID of a fixed series: every run writes the same bytes, so the damaged-input tests, which
    change bytes at fixed positions, see the same files each time."""
    return generate_uid(entropy_srcs=["universeg-worker test fixtures", str(next(_uids))])


STUDY = new_uid()


def base(sop_class, modality, series_uid, number=1):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop = new_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "Fixture^Synthetic"
    ds.PatientID = "FIXTURE-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Manufacturer = "Fixture"
    ds.ContentDate = "20260101"
    ds.ContentTime = "120000"
    return ds


def pixels(ds, array, bits_stored=None, high_bit=None, signed=False, photometric="MONOCHROME2"):
    ds.Rows, ds.Columns = array.shape[-2], array.shape[-1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = array.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = high_bit if high_bit is not None else ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = array.astype(array.dtype.newbyteorder("<")).tobytes()


def grid(rows, cols):
    return np.meshgrid(np.arange(rows, dtype=np.int64), np.arange(cols, dtype=np.int64), indexing="ij")


def save(ds, path):
    ds.save_as(path, enforce_file_format=True)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ct(out):
    series = new_uid()
    frame_of_reference = new_uid()
    paths = []
    for k in range(4):
        ds = ct_slice(series, frame_of_reference, k, 128)
        path = os.path.join(out, f"ct_{k}.dcm")
        save(ds, path)
        paths.append(path)
    save(ct_slice(new_uid(), new_uid(), 0, 512), os.path.join(out, "ct512.dcm"))
    return paths


def ct_slice(series, frame_of_reference, k, size):
    ds = base(CT, "CT", series, number=4 - k)
    r, c = grid(size, size)
    stored = (7 * r + 13 * c + 31 * k) % 3000 - 1000
    pixels(ds, stored.astype(np.int16), signed=True)
    ds.RescaleSlope = "0.5"
    ds.RescaleIntercept = "-100"
    ds.RescaleType = "HU"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [-64, -64, -10 + 2.5 * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.8]
    ds.SliceThickness = "2.5"
    ds.PatientPosition = "HFS"
    ds.KVP = "120"
    ds.AcquisitionNumber = 1
    ds.Laterality = ""
    ds.PatientOrientation = ""
    return ds


def make_us(out):
    ds = base(US, "US", new_uid())
    r, c = grid(128, 96)
    pixels(ds, ((r + 2 * c) % 256).astype(np.uint8))
    ds.PatientOrientation = ["A", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", ""]
    ds.Laterality = ""
    save(ds, os.path.join(out, "us.dcm"))


def make_mono(out):
    r, c = grid(64, 64)
    series = new_uid()
    ds = base(MR, "MR", series)
    stored = (5 * r + 3 * c) % 4096
    pixels(ds, (stored | 0xA000).astype(np.uint16), bits_stored=12)
    save(ds, os.path.join(out, "mr12.dcm"))
    ds = base(MR, "MR", series, 2)
    pixels(ds, stored.astype(np.uint16), bits_stored=12)
    save(ds, os.path.join(out, "mr12_clean.dcm"))

    ds = base(MR, "MR", series, 3)
    signed = (5 * r + 3 * c) % 4096 - 2048
    raw = ((signed & 0xFFF) | 0x5000).astype(np.uint16)
    pixels(ds, raw, bits_stored=12, signed=True)
    save(ds, os.path.join(out, "signed12.dcm"))

    ds = base(MR, "MR", series, 4)
    pixels(ds, (stored << 4).astype(np.uint16), bits_stored=12, high_bit=15)
    save(ds, os.path.join(out, "shifted.dcm"))

    ds = base(SC, "OT", new_uid())
    ds.ConversionType = "WSD"
    pixels(ds, ((3 * r + c) % 1024).astype(np.uint16), bits_stored=10, photometric="MONOCHROME1")
    save(ds, os.path.join(out, "mono1.dcm"))


def color_base(photometric, planar=0):
    ds = base(SC, "OT", new_uid())
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns = 64, 64
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    return ds


def make_color(out):
    r, c = grid(64, 64)
    red, green, blue = (4 * r) % 256, (4 * c) % 256, (2 * r + 2 * c) % 256
    rgb = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    ds = color_base("RGB", 0)
    ds.PixelData = rgb.tobytes()
    save(ds, os.path.join(out, "rgb.dcm"))
    ds = color_base("RGB", 1)
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    save(ds, os.path.join(out, "rgb_planar.dcm"))

    y = ((r + 3 * c) % 256).astype(np.uint8)
    ds = color_base("YBR_FULL", 0)
    ds.PixelData = np.stack([y, np.full_like(y, 128), np.full_like(y, 128)], axis=-1).tobytes()
    save(ds, os.path.join(out, "ybr_full.dcm"))
    ds = color_base("YBR_FULL_422", 0)
    pairs = y.reshape(64, 32, 2)
    packed = np.concatenate([pairs, np.full((64, 32, 2), 128, np.uint8)], axis=-1)  # Y1 Y2 Cb Cr
    ds.PixelData = packed.tobytes()
    save(ds, os.path.join(out, "ybr_422.dcm"))


def make_multiframe(out):
    ds = base(ENHANCED_CT, "CT", new_uid())
    ds.FrameOfReferenceUID = new_uid()
    frames = []
    r, c = grid(32, 48)
    for f in range(3):
        frames.append((r + 2 * c + 100 * f) % 1000 - 500)
    pixels(ds, np.stack(frames).astype(np.int16), signed=True)
    ds.NumberOfFrames = 3
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope = "2"
    transform.RescaleIntercept = "-50"
    transform.RescaleType = "HU"
    shared.PixelValueTransformationSequence = [transform]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [orientation]
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    measures.SliceThickness = "5"
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for f in range(3):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0, 0, 5 * f]
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    save(ds, os.path.join(out, "multiframe.dcm"))


def make_j2k(out):
    ds = pydicom.dcmread(os.path.join(out, "ct_0.dcm"))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    save(ds, os.path.join(out, "j2k.dcm"))


def make_compressed(out):
    ct0 = os.path.join(out, "ct_0.dcm")
    run("dcmconv", "+ti", ct0, os.path.join(out, "ct_0_implicit.dcm"))
    run("dcmconv", "+tb", ct0, os.path.join(out, "ct_0_bigendian.dcm"))
    run("dcmcrle", ct0, os.path.join(out, "ct_0_rle.dcm"))
    run("dcmcjpeg", "+e1", ct0, os.path.join(out, "ct_0_jpegll.dcm"))
    run("dcmcjpls", "+el", ct0, os.path.join(out, "ct_0_jpegls.dcm"))
    run("dcmcjpeg", "+eb", "+un", os.path.join(out, "us.dcm"), os.path.join(out, "us_jpeg.dcm"))
    run("dcmcjpeg", "+ee", "+un", os.path.join(out, "mr12_clean.dcm"), os.path.join(out, "mr12_jpegext.dcm"))
    run("dcmcrle", os.path.join(out, "rgb.dcm"), os.path.join(out, "rgb_rle.dcm"))
    run("dcmcjpeg", "+eb", "+un", os.path.join(out, "rgb.dcm"), os.path.join(out, "rgb_jpeg.dcm"))
    run("dcmcrle", os.path.join(out, "multiframe.dcm"), os.path.join(out, "multiframe_rle.dcm"))


def make_hd_seg(out, ct_paths):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    sources = [pydicom.dcmread(p) for p in ct_paths]
    masks = []
    r, c = grid(128, 128)
    for k in range(4):
        masks.append(((r + c + k) % 5 == 0).astype(np.uint8))
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Liver",
        segmented_property_category=codes.SCT.Organ, segmented_property_type=codes.SCT.Liver,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="fixture", version="1", family=codes.DCM.ArtificialIntelligence))
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=np.stack(masks), segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description], series_instance_uid=new_uid(), series_number=90,
        sop_instance_uid=new_uid(), instance_number=1, manufacturer="Fixture",
        manufacturer_model_name="fixture", software_versions="1", device_serial_number="1")
    seg.save_as(os.path.join(out, "hd_seg.dcm"))


def make_bad(out):
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    ct0 = os.path.join(out, "ct_0.dcm")
    data = open(ct0, "rb").read()

    def write(name, payload):
        open(os.path.join(bad, name), "wb").write(payload)

    def variant(name, change):
        ds = pydicom.dcmread(ct0)
        change(ds)
        save(ds, os.path.join(bad, name))

    write("empty.dcm", b"")
    write("garbage.dcm", bytes((i * 97 + 13) % 256 for i in range(4096)))
    write("truncated_half.dcm", data[: len(data) // 2])
    write("truncated_header.dcm", data[:300])
    write("preamble_only.dcm", data[:132])

    def bomb_huge(ds):
        ds.Rows = 65535
        ds.Columns = 65535
        ds.PixelData = b"\x00" * 64
    variant("bomb_dimensions.dcm", bomb_huge)

    def bomb_frames(ds):
        ds.Rows = 4096
        ds.Columns = 4096
        ds.NumberOfFrames = 400
        ds.PixelData = b"\x00" * 64
    variant("bomb_short_pixeldata.dcm", bomb_frames)

    def bomb_many_frames(ds):
        ds.NumberOfFrames = 100000
    variant("bomb_frame_count.dcm", bomb_many_frames)

    variant("no_pixeldata.dcm", lambda ds: delattr(ds, "PixelData"))
    variant("no_sop_instance_uid.dcm", lambda ds: delattr(ds, "SOPInstanceUID"))
    variant("no_study_uid.dcm", lambda ds: delattr(ds, "StudyInstanceUID"))
    variant("no_rows.dcm", lambda ds: delattr(ds, "Rows"))

    def bits(ds):
        ds.BitsStored = 20
    variant("bits_stored_too_large.dcm", bits)

    def frames_zero(ds):
        ds.NumberOfFrames = 0
    variant("frames_zero.dcm", frames_zero)

    def palette(ds):
        ds.PhotometricInterpretation = "PALETTE COLOR"
        ds.PixelRepresentation = 0
    variant("palette.dcm", palette)

    def bits1(ds):
        ds.BitsAllocated = 1
        ds.BitsStored = 1
        ds.HighBit = 0
        ds.PixelRepresentation = 0
    variant("bits_allocated_1.dcm", bits1)

    # An SR document (no pixels).
    sr = base(SR, "SR", new_uid())
    sr.ValueType = "CONTAINER"
    sr.ContinuityOfContent = "SEPARATE"
    save(sr, os.path.join(bad, "sr.dcm"))

    # The PixelData length field claims more bytes than the file holds.
    tag = b"\xe0\x7f\x10\x00OW\x00\x00"
    at = data.rfind(tag)
    patched = bytearray(data)
    patched[at + 8: at + 12] = (len(data) * 4).to_bytes(4, "little")
    write("pixeldata_length_too_long.dcm", bytes(patched))

    # Encapsulated: 3 frames declared, 1 fragment present.
    rle = pydicom.dcmread(os.path.join(out, "ct_0_rle.dcm"))
    rle.NumberOfFrames = 3
    save(rle, os.path.join(bad, "rle_missing_fragments.dcm"))

    # RLE with a corrupt segment header (the fragment is garbage).
    rle = pydicom.dcmread(os.path.join(out, "ct_0_rle.dcm"))
    rle.PixelData = encapsulate([b"\x07" + b"\xff" * 63])
    save(rle, os.path.join(bad, "rle_corrupt.dcm"))

    # RLE headers that contradict their fragment (ct_0_rle's frame, 2 segments, with one field changed):
    # a segment offset far past the fragment, a segment count above the samples' bytes, an empty segment,
    # a fragment shorter than the 64-byte header, and one frame split into two fragments.
    frame = next(generate_frames(pydicom.dcmread(os.path.join(out, "ct_0_rle.dcm")).PixelData, number_of_frames=1))
    segments, first, second = struct.unpack_from("<3I", frame)
    assert (segments, first) == (2, 64)
    for name, pixels in [
        ("rle_offset_outside.dcm", encapsulate([frame[:8] + struct.pack("<I", 0x53000000 + second) + frame[12:]])),
        ("rle_segment_count.dcm", encapsulate([struct.pack("<I", 3) + frame[4:]])),
        ("rle_empty_segment.dcm", encapsulate([frame[:8] + struct.pack("<I", first) + frame[12:]])),
        ("rle_short_header.dcm", encapsulate([frame[:40]])),
        ("rle_split_frame.dcm", encapsulate([frame], fragments_per_frame=2)),
    ]:
        rle = pydicom.dcmread(os.path.join(out, "ct_0_rle.dcm"))
        rle.PixelData = pixels
        save(rle, os.path.join(bad, name))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ct_paths = make_ct(out)
    make_us(out)
    make_mono(out)
    make_color(out)
    make_multiframe(out)
    make_compressed(out)
    make_j2k(out)
    make_bad(out)
    make_hd_seg(out, ct_paths)
    print("ok")


if __name__ == "__main__":
    main()
