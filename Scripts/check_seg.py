#!/usr/bin/env python3
"""Reads a DICOM Segmentation with highdicom and prints, as JSON, what highdicom maps back to each source image.

Usage: check_seg.py SEG SOURCE...   (single-frame sources)
Output: {"segmentationType", "segments": {number: label}, "frames", "referencedInstances": [SOP instance UIDs],
         "masks": {source SOP instance UID: "0101..." (row-major, segment 1)}}
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
        result = {
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
