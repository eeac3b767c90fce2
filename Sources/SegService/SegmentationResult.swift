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

    enum CodingKeys: String, CodingKey {
        case schema, requestID = "request_id", status, mask, foregroundFraction = "foreground_fraction", dice, model
        case supportSet = "support_set", options, timingsMs = "timings_ms", worker, source, replay, error
    }
}
