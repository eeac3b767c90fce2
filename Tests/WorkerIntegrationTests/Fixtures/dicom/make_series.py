#!/usr/bin/env python3
"""Writes the DICOM series of the worker's DICOM integration tests into OUTDIR and prints it as JSON.

A CT series of 4 axial slices, 64x64, 16-bit unsigned, RescaleSlope 1, RescaleIntercept 0:
pixel (r, c) of slice k is 200 inside the disk (r - 20 - 6k)^2 + (c - 24 - 4k)^2 < 100, else 40.
Slice k has InstanceNumber k + 1 and ImagePositionPatient (0, 0, 10 - 3k), so ordered by position
along the normal (0, 0, 1) the slices run k = 3, 2, 1, 0. The patient module is complete enough
for dciodvfy (PatientName, PatientID, BirthDate, Sex, PatientPosition, Laterality).

Output: {"study": UID, "series": UID, "instances": [UID of slice k], "paths": [path of slice k]}
"""
import json
import os
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"


def pixels(k):
    r, c = np.mgrid[0:64, 0:64]
    disk = (r - 20 - 6 * k) ** 2 + (c - 24 - 4 * k) ** 2 < 100
    return np.where(disk, 200, 40).astype(np.uint16)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    uids, paths = [], []
    for k in range(4):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Phantom", "PHANTOM-1", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261130", "120000", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.PatientPosition, ds.Laterality = "HFS", ""
        ds.Manufacturer = "universeg-worker tests"
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 10 - 3 * k]
        ds.PixelSpacing = [0.8, 0.8]
        ds.SliceThickness = 3
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = 64, 64
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixels(k).tobytes()
        path = os.path.join(out, f"slice{k}.dcm")
        ds.save_as(path, enforce_file_format=True)
        uids.append(sop)
        paths.append(path)
    print(json.dumps({"study": study, "series": series, "instances": uids, "paths": paths}))


if __name__ == "__main__":
    main()
