import SegDICOM
import SegService
import Testing

@Suite struct DICOMErrorMappingTests {
    /// Broken or unsupported DICOM is the request's fault (an error result and a dead letter); a
    /// DICOM library that cannot be loaded is not: the request waits, as on a dependency that is down.
    @Test func onlyAMissingDICOMLibraryIsTransient() {
        for kind in [DICOMError.Kind.invalid, .unsupported, .tooLarge] {
            let error = DICOMSegmenting.serviceError(DICOMError(kind, "reason"))
            #expect(!error.isTransient, "\(kind)")
            #expect(error.reason == "reason")
        }
        let missing = DICOMSegmenting.serviceError(DICOMError(.unavailable, "DICOM support unavailable: cannot load it"))
        #expect(missing.isTransient)
        #expect(missing.dependency == "dcmtk")
        #expect(missing.reason == "DICOM support unavailable: cannot load it")
        #expect(DICOMError.Kind.unavailable.code == "dicom_unavailable")
    }
}
