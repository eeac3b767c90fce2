/// Why a request failed. `code` is one of the stable codes documented in
/// Config/schemas/README.md; `reason` is a short explanation that never contains request data.
public struct ServiceError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible, Codable {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(rawValue)
        }

        /// The value is not a JSON object (includes empty and null/tombstone values).
        public static let invalidJSON = Code("invalid_json")
        /// The JSON does not follow the request schema (missing, extra or mistyped fields, bounds).
        public static let invalidRequest = Code("invalid_request")
        /// The image or ground truth is not valid base64 or not a valid PNG.
        public static let imageDecode = Code("image_decode")
        /// The image (or its declared dimensions) exceeds the configured limits.
        public static let imageTooLarge = Code("image_too_large")
        /// No such support set or version in the store.
        public static let supportSetNotFound = Code("support_set_not_found")
        /// The support set exists but cannot be used (bad manifest, images, empty labels).
        public static let supportSetInvalid = Code("support_set_invalid")
        /// The request asks for more than the support set has (e.g. support_size).
        public static let optionsInvalid = Code("invalid_options")
        /// A bug or an unexpected failure of the worker itself.
        public static let `internal` = Code("internal")

        public static let all: [Code] = [.invalidJSON, .invalidRequest, .imageDecode, .imageTooLarge,
                                         .supportSetNotFound, .supportSetInvalid, .optionsInvalid, .internal]
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
