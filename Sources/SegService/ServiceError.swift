/// Why a request failed. `code` is one of the stable codes documented in
/// Config/schemas/README.md; `reason` is a short explanation that never contains request data.
///
/// A failure is either permanent (the request's own fault: it gets an error result and a dead
/// letter) or transient (`dependency` is set: a store or PACS that is down, a timeout, HTTP 5xx or
/// 429). A transient failure never becomes a result or a dead letter: the worker waits and
/// processes the same request again.
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
        /// The DICOM instance, series or study is not on the server (or the series is empty).
        public static let dicomNotFound = Code("dicom_not_found")
        /// The DICOM bytes are not a valid object: truncated, wrong lengths, missing PixelData or UIDs,
        /// or the server returned another instance than the one requested.
        public static let dicomInvalid = Code("dicom_invalid")
        /// Valid DICOM the worker cannot segment: transfer syntax (JPEG 2000), SOP class (SR, ...),
        /// photometric interpretation (PALETTE COLOR), a mixed series.
        public static let dicomUnsupported = Code("dicom_unsupported")
        /// Above dicom.max_frames, the byte limits, or too large a SEG for an inline result.
        public static let dicomTooLarge = Code("dicom_too_large")
        /// The DICOMweb server refused to store the SEG (STOW-RS FailedSOPSequence or 409).
        public static let dicomStoreRejected = Code("dicom_store_rejected")
        /// A dependency (support-set store, DICOMweb server) cannot be reached or answered with a
        /// server-side error. Transient: never in a result or dead letter, the request is retried.
        public static let dependencyUnavailable = Code("dependency_unavailable")

        public static let all: [Code] = [.invalidJSON, .invalidRequest, .imageDecode, .imageTooLarge,
                                         .supportSetNotFound, .supportSetInvalid, .optionsInvalid, .internal,
                                         .dicomNotFound, .dicomInvalid, .dicomUnsupported, .dicomTooLarge, .dicomStoreRejected]
    }

    public let code: Code
    public let reason: String
    /// The dependency that failed ("store", "dicomweb:NAME") when the failure is transient.
    public let dependency: String?

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
        self.dependency = nil
    }

    /// A transient failure of `dependency`: the request waits and is retried.
    public static func unavailable(_ dependency: String, _ reason: String) -> ServiceError {
        ServiceError(code: .dependencyUnavailable, reason: reason, dependency: dependency)
    }

    private init(code: Code, reason: String, dependency: String) {
        self.code = code
        self.reason = reason
        self.dependency = dependency
    }

    /// Whether the request should wait and be retried instead of failing.
    public var isTransient: Bool { dependency != nil }

    public var description: String { "\(code): \(reason)" }
}
