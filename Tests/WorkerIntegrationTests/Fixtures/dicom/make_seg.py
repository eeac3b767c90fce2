#!/usr/bin/env python3
"""Writes a highdicom BINARY SEG over the series of make_series.py and prints its UIDs as JSON.

Usage: make_seg.py OUT.dcm SOURCE...   (the slices written by make_series.py)
Segment 1 "disk" is 1 where a slice's pixel is 200 (its disk), segment 2 "rim" is 1 on the
first and last rows. highdicom leaves out empty frames.
Output: {"study": UID, "series": UID, "sop": UID}
"""
import json
import sys

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    sources = [pydicom.dcmread(p) for p in paths]
    masks = []
    for ds in sources:
        disk = (ds.pixel_array == 200).astype(np.uint8)
        rim = np.zeros_like(disk)
        rim[0, :] = 1
        rim[-1, :] = 1
        masks.append(np.stack([disk, rim], axis=-1))

    def segment(number, label):
        return hd.seg.SegmentDescription(
            segment_number=number, segment_label=label,
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)

    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=np.stack(masks), segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment(1, "disk"), segment(2, "rim")], series_instance_uid=generate_uid(),
        series_number=90, sop_instance_uid=generate_uid(), instance_number=1, manufacturer="Fixture",
        manufacturer_model_name="fixture", software_versions="1", device_serial_number="1")
    seg.save_as(out)
    print(json.dumps({"study": str(seg.StudyInstanceUID), "series": str(seg.SeriesInstanceUID), "sop": str(seg.SOPInstanceUID)}))


if __name__ == "__main__":
    main()
