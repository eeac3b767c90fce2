#!/usr/bin/env python3
"""The DICOM half of Scripts/demo (pydicom, highdicom; standard library HTTP only).

  demo_dicom.py make  QUERIES_DIR OUT_DIR DICOMWEB_URL   -> writes a DICOM series of the query PNGs,
                                                           stores it with STOW-RS, prints "STUDY SERIES"
  demo_dicom.py check DICOMWEB_URL STUDY SERIES TRUTH_DIR OUT_DIR
                                                         -> lists the SEG series in the study (QIDO-RS),
                                                           fetches each SEG (WADO-RS), maps its frames to
                                                           the source instances with highdicom and prints
                                                           Dice against the ground truth per image

The series: one Secondary Capture instance per query image (8-bit MONOCHROME2, the PNG's pixels
unchanged), InstanceNumber in file-name order, in a new study of a synthetic patient.
"""
import io
import json
import os
import sys
import urllib.request
import uuid

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SC = "1.2.840.10008.5.1.4.1.1.7"


def stow(url, study, paths):
    boundary = uuid.uuid4().hex
    body = b""
    for path in paths:
        body += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + open(path, "rb").read() + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    request = urllib.request.Request(f"{url}/studies/{study}", data=body, method="POST", headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}', "Accept": "application/dicom+json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        result = json.load(answer)
    failed = result.get("00081198", {}).get("Value", [])
    if failed:
        sys.exit(f"STOW-RS refused {len(failed)} instances")


def make(queries, out, url):
    os.makedirs(out, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for number, name in enumerate(sorted(f for f in os.listdir(queries) if f.endswith(".png")), start=1):
        pixels = np.asarray(Image.open(os.path.join(queries, name)).convert("L"), dtype=np.uint8)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = SC, ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = SC, generate_uid()
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Demo^Smear", "DEMO-1", "", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20261130", "120000", "1", "", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.ConversionType = "OT", 1, number, "WSD"
        ds.PatientOrientation = ""
        ds.ImageComments = name
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.tobytes()
        path = os.path.join(out, f"{number:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    stow(url, study, paths)
    print(study, series)


def wado(url, study, series, sop):
    request = urllib.request.Request(f"{url}/studies/{study}/series/{series}/instances/{sop}",
                                     headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    with urllib.request.urlopen(request, timeout=30) as answer:
        content_type, body = answer.headers["Content-Type"], answer.read()
    boundary = [p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")][0]
    part = body.split(b"--" + boundary.encode())[1]
    return part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]


def check(url, study, series, truth, out):
    with urllib.request.urlopen(urllib.request.Request(f"{url}/studies/{study}/series?Modality=SEG",
                                                       headers={"Accept": "application/dicom+json"}), timeout=30) as answer:
        segs = json.load(answer)
    sources = {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/studies/{study}/series/{series}/instances",
                                                       headers={"Accept": "application/dicom+json"}), timeout=30) as answer:
        for item in json.load(answer):
            sop = item["00080018"]["Value"][0]
            sources[sop] = pydicom.dcmread(io.BytesIO(wado(url, study, series, sop)))
    print(f"PACS: {len(sources)} source images, {len(segs)} SEG series in the study")
    dices = []
    for seg_series in segs:
        seg_uid = seg_series["0020000E"]["Value"][0]
        with urllib.request.urlopen(urllib.request.Request(f"{url}/studies/{study}/series/{seg_uid}/instances",
                                                           headers={"Accept": "application/dicom+json"}), timeout=30) as answer:
            instances = json.load(answer)
        for item in instances:
            sop = item["00080018"]["Value"][0]
            data = wado(url, study, seg_uid, sop)
            path = os.path.join(out, f"{sop}.seg.dcm")
            open(path, "wb").write(data)
            seg = hd.seg.segread(path)
            print(f"SEG {sop}: {seg.NumberOfFrames} frames, segment '{seg.SegmentSequence[0].SegmentLabel}', "
                  f"algorithm {seg.SegmentSequence[0].SegmentAlgorithmName} {seg.SegmentSequence[0].get('SegmentAlgorithmVersion', '')}".rstrip())
            for uid, source in sorted(sources.items(), key=lambda kv: int(kv[1].InstanceNumber)):
                mask = seg.get_pixels_by_source_instance([uid], segment_numbers=[1])[0, :, :, 0] > 0
                name = str(source.ImageComments)
                truth_mask = np.asarray(Image.open(os.path.join(truth, name)).convert("L")) > 0
                inter = np.logical_and(mask, truth_mask).sum()
                dice = 2 * inter / max(mask.sum() + truth_mask.sum(), 1)
                dices.append(dice)
                print(f"  {name}: Dice {100 * dice:.1f}")
    if dices:
        print(f"mean Dice over {len(dices)} DICOM slices: {100 * np.mean(dices):.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(*sys.argv[2:5])
    else:
        check(*sys.argv[2:7])
