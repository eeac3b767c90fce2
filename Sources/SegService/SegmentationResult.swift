/// The result record published on the results topic (key = request_id), schema
/// Config/schemas/result.v1.schema.json.
public struct SegmentationResult: Codable, Sendable, Equatable {
    public struct Mask: Codable, Sendable, Equatable {
        public var pngBase64: String
        public var width: Int
        public var height: Int
        enum CodingKeys: String, CodingKey { case pngBase64 = "png_base64", width, height }
    }

    public struct Model: Codable, Sendable, Equatable {
        public var name: String
        public var sha256: String
    }

    public struct SupportSet: Codable, Sendable, Equatable {
        public var id: String
        public var version: String
        public var sha256: String
        public var sizeUsed: Int
        enum CodingKeys: String, CodingKey { case id, version, sha256, sizeUsed = "size_used" }
    }

    public struct Timings: Codable, Sendable, Equatable {
        public var queue: Double
        public var fetch: Double
        public var inference: Double
        public var total: Double
    }

    public struct Source: Codable, Sendable, Equatable {
        public var topic: String
        public var partition: Int32
        public var offset: Int64
        public init(topic: String, partition: Int32, offset: Int64) {
            self.topic = topic
            self.partition = partition
            self.offset = offset
        }
    }

    /// The DICOM Segmentation made for a DICOM request.
    public struct DICOMSeg: Codable, Sendable, Equatable {
        /// The DICOMweb server it was stored on (nil: not stored; then `base64` carries it).
        public var server: String?
        public var studyUID: String
        public var seriesUID: String
        public var sopInstanceUID: String
        public var frames: Int
        /// The server's RetrieveURL (0008,1190) for the stored instance, when it gave one.
        public var retrieveURL: String?
        /// The Part-10 bytes, base64, when the SEG was not stored.
        public var base64: String?
        enum CodingKeys: String, CodingKey {
            case server, studyUID = "study_uid", seriesUID = "series_uid", sopInstanceUID = "sop_instance_uid", frames
            case retrieveURL = "retrieve_url", base64
        }
    }

    /// One segmented slice of a DICOM request, in slice order.
    public struct Slice: Codable, Sendable, Equatable {
        public var sopInstanceUID: String
        /// 1-based frame number within its instance.
        public var frame: Int
        public var foregroundFraction: Double
        enum CodingKeys: String, CodingKey { case sopInstanceUID = "sop_instance_uid", frame, foregroundFraction = "foreground_fraction" }
    }

    public struct ErrorInfo: Codable, Sendable, Equatable {
        public var code: ServiceError.Code
        public var reason: String
    }

    public var schema = "universeg.result.v1"
    public var requestID: String
    public var status: String
    public var mask: Mask?
    public var foregroundFraction: Double?
    public var dice: Double?
    public var model: Model
    public var supportSet: SupportSet?
    public var options: SegmentationRequest.Options?
    public var timingsMs: Timings?
    public var worker: String
    public var source: Source
    public var replay: Bool?
    public var error: ErrorInfo?
    public var dicomSeg: DICOMSeg? = nil
    public var slices: [Slice]? = nil

    enum CodingKeys: String, CodingKey {
        case schema, requestID = "request_id", status, mask, foregroundFraction = "foreground_fraction", dice, model
        case supportSet = "support_set", options, timingsMs = "timings_ms", worker, source, replay, error
        case dicomSeg = "dicom_seg", slices
    }
}
