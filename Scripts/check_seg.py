#!/usr/bin/env python3
"""Reads a DICOM Segmentation with highdicom and prints, as JSON, what highdicom maps back to each source image.

Usage: check_seg.py SEG SOURCE...   (single-frame sources)
Output: {"segmentationType", "segments": {number: label}, "frames", "referencedInstances": [SOP instance UIDs],
         "masks": {source SOP instance UID: "0101..." (row-major, segment 1)},
         "attributes": {keyword: value as text} for the header attributes the tests check,
         "segment": the first segment's codes and algorithm identification,
         "spatialLocationsPreserved": the values in every Source Image Sequence item,
         "positions": ImagePositionPatient of each frame or null, "orientation": the shared ImageOrientationPatient or null}
Exits 1 with {"error": ...} when highdicom cannot read the SEG or map a source.
"""
import json
import sys

import highdicom as hd
import pydicom


def main():
    seg_path, source_paths = sys.argv[1], sys.argv[2:]
    try:
        seg = hd.seg.segread(seg_path)
        referenced = sorted(uid for _, _, uid in seg.get_source_image_uids())
        masks = {}
        for path in source_paths:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[uid], segment_numbers=[1])
            masks[uid] = "".join("1" if v else "0" for v in pixels[0, :, :, 0].reshape(-1))
        keywords = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                    "AccessionNumber", "StudyDate", "SeriesNumber", "SeriesDescription", "Modality", "Manufacturer",
                    "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "FrameOfReferenceUID",
                    "PatientOrientation", "ContentLabel"]
        attributes = {k: str(seg.get(k)) for k in keywords if k in seg}
        item = seg.SegmentSequence[0]
        algorithm = item.get("SegmentationAlgorithmIdentificationSequence", [None])[0]
        segment = {
            "category": f"{item.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator}:"
                        f"{item.SegmentedPropertyCategoryCodeSequence[0].CodeValue}",
            "type": f"{item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator}:"
                    f"{item.SegmentedPropertyTypeCodeSequence[0].CodeValue}",
            "algorithmType": str(item.SegmentAlgorithmType),
            "algorithmName": str(item.get("SegmentAlgorithmName", "")),
            "family": None if algorithm is None else
                f"{algorithm.AlgorithmFamilyCodeSequence[0].CodingSchemeDesignator}:"
                f"{algorithm.AlgorithmFamilyCodeSequence[0].CodeValue}",
            "algorithmVersion": None if algorithm is None else str(algorithm.AlgorithmVersion),
        }
        preserved, positions = [], []
        for frame in seg.PerFrameFunctionalGroupsSequence:
            for derivation in frame.get("DerivationImageSequence", []):
                for source in derivation.get("SourceImageSequence", []):
                    preserved.append(str(source.get("SpatialLocationsPreserved", "")))
            plane = frame.get("PlanePositionSequence")
            positions.append([float(v) for v in plane[0].ImagePositionPatient] if plane else None)
        shared = seg.SharedFunctionalGroupsSequence[0]
        orientation = shared.get("PlaneOrientationSequence")
        result = {
            "attributes": attributes,
            "segment": segment,
            "spatialLocationsPreserved": preserved,
            "positions": positions,
            "orientation": [float(v) for v in orientation[0].ImageOrientationPatient] if orientation else None,
            "segmentationType": str(seg.SegmentationType),
            "segments": {str(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence},
            "frames": int(seg.NumberOfFrames),
            "referencedInstances": referenced,
            "masks": masks,
        }
    except Exception as error:  # report, do not crash: the test prints it
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
