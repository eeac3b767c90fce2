import Foundation

/// Synthetic DICOM files made by a short pydicom script (`python3` on PATH with pydicom and numpy).
/// Patient data in them is made up ("Test^Synthetic").
public enum DICOMFixtures {
    /// One CT slice per file: CT Image Storage, explicit VR little endian, 64x64 int16
    /// MONOCHROME2 with geometry (FoR, IPP/IOP, PixelSpacing), rescale -1024/1. Pixel values
    /// differ per slice; SOPInstanceUIDs are fresh.
    static let script = """
        import sys, numpy as np
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
        out, study, series, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        for i in range(count):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            sop = generate_uid()
            meta.MediaStorageSOPInstanceUID = sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset(); ds.file_meta = meta
            ds.SOPClassUID = meta.MediaStorageSOPClassUID; ds.SOPInstanceUID = sop
            ds.PatientName = "Test^Synthetic"; ds.PatientID = "SYNTH-1"
            ds.StudyInstanceUID = study; ds.SeriesInstanceUID = series
            ds.Modality = "CT"; ds.InstanceNumber = i + 1; ds.SeriesNumber = 1
            ds.FrameOfReferenceUID = study + ".9"
            ds.ImagePositionPatient = [0, 0, float(i) * 2.5]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.8, 0.8]; ds.SliceThickness = 2.5
            ds.Rows = 64; ds.Columns = 64; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 1
            ds.RescaleIntercept = -1024; ds.RescaleSlope = 1
            ds.PixelData = (np.arange(64 * 64, dtype=np.int16).reshape(64, 64) + i * 7).tobytes()
            ds.save_as(f"{out}/{i:03d}.dcm", enforce_file_format=True)
            print(sop)
        """

    public struct Instance: Sendable {
        public let sopInstanceUID: String
        public let bytes: [UInt8]
    }

    public enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        public var description: String {
            switch self { case .unavailable(let text): text }
        }
    }

    /// Why fixtures cannot be made here, or nil (checks that python3 imports pydicom and numpy).
    public static let skipReason: String? = {
        let result = run(["-c", "import pydicom, numpy"])
        return result.status == 0 ? nil : "python3 with pydicom and numpy is needed for DICOM fixtures: \(result.output.suffix(300))"
    }()

    /// `count` CT slices of one series, in slice order.
    public static func ctSeries(study: String, series: String, count: Int) throws -> [Instance] {
        let directory = try TemporaryDirectory(prefix: "ct-fixture")
        let result = run(["-c", script, directory.path, study, series, String(count)])
        guard result.status == 0 else { throw Failure.unavailable("fixture script failed: \(result.output.suffix(1000))") }
        let uids = result.output.split(whereSeparator: \.isNewline).map(String.init)
        let files = directory.files(in: "")
        guard uids.count == count, files.count == count else { throw Failure.unavailable("fixture script wrote \(files.count) files") }
        return try zip(uids, files).map { uid, file in
            Instance(sopInstanceUID: uid, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path + "/" + file))))
        }
    }

    private static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        do {
            let r = try runToCompletion("/usr/bin/env", ["python3"] + arguments, combineOutput: true)
            return (r.status, r.stdout)
        } catch {
            return (-1, "\(error)")
        }
    }
}
