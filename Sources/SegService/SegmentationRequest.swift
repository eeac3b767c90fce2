internal import Foundation

/// A segmentation request as it arrives on the requests topic (JSON, schema
/// Config/schemas/request.v1.schema.json). Parsing is strict: unknown fields, wrong types and
/// values out of bounds are `invalid_request` errors naming the field.
public struct SegmentationRequest: Sendable, Equatable {
    public enum Image: Sendable, Equatable {
        case png([UInt8])
        case storePath(String)
    }

    public struct Options: Sendable, Equatable, Codable {
        public var supportSize: Int?
        public var ensemble: Int
        public var seed: UInt64
        public var threshold: Float

        public static let `default` = Options(supportSize: nil, ensemble: 1, seed: 0, threshold: 0.5)

        public init(supportSize: Int?, ensemble: Int, seed: UInt64, threshold: Float) {
            self.supportSize = supportSize
            self.ensemble = ensemble
            self.seed = seed
            self.threshold = threshold
        }

        enum CodingKeys: String, CodingKey {
            case supportSize = "support_size", ensemble, seed, threshold
        }
    }

    public var requestID: String
    public var supportSetID: String
    public var supportSetVersion: String?
    public var image: Image
    public var options: Options
    public var groundTruth: [UInt8]?

    /// Limits on request contents.
    public struct Limits: Sendable {
        public var maxImageBytes = 32 << 20
        public var maxSupportSize = 256
        public var maxEnsemble = 32
        public init() {}
    }

    static let requestIDCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
    static let nameCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

    /// Whether `id` is a valid request_id (1-128 chars of [A-Za-z0-9._:-]).
    public static func isValidRequestID(_ id: String) -> Bool {
        (1...128).contains(id.count) && id.allSatisfy { requestIDCharacters.contains($0) }
    }

    /// Whether `name` is a valid support-set id or version (1-128 chars of [A-Za-z0-9._-],
    /// not "." or "..").
    public static func isValidName(_ name: String) -> Bool {
        (1...128).contains(name.count) && name != "." && name != ".." && name.allSatisfy { nameCharacters.contains($0) }
    }

    /// Parses a record value. A nil value (tombstone) or empty bytes are `invalid_json`.
    public static func parse(_ value: [UInt8]?, limits: Limits = Limits()) throws -> SegmentationRequest {
        var requestID: String?
        return try parse(value, limits: limits, requestID: &requestID)
    }

    /// Parses a record value and, even when it fails, sets `requestID` to the request's
    /// request_id when it has a usable one (valid characters, given once): an error result can
    /// then be keyed by it.
    ///
    /// The value must be strict JSON (`StrictJSON`): UTF-8, exactly RFC 8259's grammar, at most
    /// 512 levels deep, an object at the top; otherwise `invalid_json`. Duplicate keys are
    /// `invalid_request` (and a duplicated request_id is not usable). A null optional field
    /// counts as absent.
    public static func parse(_ value: [UInt8]?, limits: Limits = Limits(), requestID: inout String?) throws -> SegmentationRequest {
        requestID = nil
        guard let value, !value.isEmpty else { throw ServiceError(.invalidJSON, "empty or null record value (tombstone)") }
        let report: StrictJSON.Report
        switch StrictJSON.check(value) {
        case .success(let r): report = r
        case .failure(.notAnObject): throw ServiceError(.invalidJSON, "value is not a JSON object")
        case .failure(.tooDeep): throw ServiceError(.invalidJSON, "value is nested deeper than \(StrictJSON.maxDepth) levels")
        case .failure(.syntax): throw ServiceError(.invalidJSON, "value is not valid UTF-8 JSON")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(value), options: [])
        } catch {
            // Invalid UTF-8 inside a string, or a number beyond a double (1e400).
            throw ServiceError(.invalidJSON, "value is not valid UTF-8 JSON")
        }
        guard let root = json as? [String: Any] else { throw ServiceError(.invalidJSON, "value is not a JSON object") }
        if let id = root["request_id"] as? String, isValidRequestID(id), !report.duplicateTopLevelKeys.contains("request_id") {
            requestID = id
        }
        if let duplicate = report.firstDuplicate {
            throw ServiceError(.invalidRequest, "duplicate field \(Fields.shown(duplicate.joined(separator: ".")))")
        }
        var fields = Fields(root, path: "")
        try fields.allow(["request_id", "support_set", "image", "options", "ground_truth"])
        let id = try fields.string("request_id")
        guard isValidRequestID(id) else {
            throw ServiceError(.invalidRequest, "request_id must be 1-128 characters of [A-Za-z0-9._:-]")
        }
        var support = try fields.object("support_set")
        try support.allow(["id", "version"])
        let setID = try support.string("id")
        guard isValidName(setID) else { throw ServiceError(.invalidRequest, "support_set.id must be 1-128 characters of [A-Za-z0-9._-]") }
        let version = try support.optionalString("version")
        if let version, !isValidName(version) {
            throw ServiceError(.invalidRequest, "support_set.version must be 1-128 characters of [A-Za-z0-9._-]")
        }
        var imageFields = try fields.object("image")
        try imageFields.allow(["png_base64", "store_path"])
        let image: Image
        switch (try imageFields.optionalString("png_base64"), try imageFields.optionalString("store_path")) {
        case (let b64?, nil):
            image = .png(try decodeBase64(b64, field: "image.png_base64", maxBytes: limits.maxImageBytes))
        case (nil, let path?):
            guard path.count <= 1024, !path.isEmpty else { throw ServiceError(.invalidRequest, "image.store_path must be 1-1024 characters") }
            image = .storePath(path)
        default:
            throw ServiceError(.invalidRequest, "image must have exactly one of png_base64 and store_path")
        }
        var options = Options.default
        if fields.has("options") {
            var o = try fields.object("options")
            try o.allow(["support_size", "ensemble", "seed", "threshold"])
            options.supportSize = try o.optionalInt("support_size", in: 1...limits.maxSupportSize)
            options.ensemble = try o.optionalInt("ensemble", in: 1...limits.maxEnsemble) ?? 1
            options.seed = UInt64(try o.optionalInt("seed", in: 0...(1 << 53)) ?? 0)
            if let t = try o.optionalDouble("threshold") {
                guard t.isFinite, t >= 0, t < 1 else { throw ServiceError(.invalidRequest, "options.threshold must be in [0, 1)") }
                options.threshold = Float(t)
            }
        }
        var groundTruth: [UInt8]? = nil
        if fields.has("ground_truth") {
            var g = try fields.object("ground_truth")
            try g.allow(["png_base64"])
            groundTruth = try decodeBase64(try g.string("png_base64"), field: "ground_truth.png_base64", maxBytes: limits.maxImageBytes)
        }
        return SegmentationRequest(requestID: id, supportSetID: setID, supportSetVersion: version, image: image,
                                   options: options, groundTruth: groundTruth)
    }

    /// The request_id of a value that failed to parse, when it has a usable one (so that an
    /// error result can still be keyed by it).
    public static func salvageRequestID(_ value: [UInt8]?) -> String? {
        var id: String?
        _ = try? parse(value, requestID: &id)
        return id
    }

    static func decodeBase64(_ text: String, field: String, maxBytes: Int) throws -> [UInt8] {
        guard text.utf8.count <= (maxBytes / 3 + 1) * 4 + 4 else {
            throw ServiceError(.imageTooLarge, "\(field) exceeds \(maxBytes) bytes")
        }
        guard let data = Data(base64Encoded: text), !data.isEmpty else {
            throw ServiceError(.imageDecode, "\(field) is not valid base64")
        }
        guard data.count <= maxBytes else { throw ServiceError(.imageTooLarge, "\(field) exceeds \(maxBytes) bytes") }
        return [UInt8](data)
    }
}

/// Typed access to one JSON object with field paths in error messages.
struct Fields {
    let object: [String: Any]
    let path: String

    init(_ object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    mutating func allow(_ keys: Set<String>) throws {
        if let extra = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ServiceError(.invalidRequest, "unknown field \(Self.shown(extra)) in \(path.isEmpty ? "request" : path)")
        }
    }

    static let shownCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-[]")

    /// A field name as error reasons show it: quoted when it looks like an identifier (at most
    /// 64 characters of [A-Za-z0-9._-]), otherwise not at all, so that no free text from a
    /// request reaches a reason.
    static func shown(_ name: String) -> String {
        (1...64).contains(name.count) && name.allSatisfy { shownCharacters.contains($0) } ? "'\(name)'" : "(name not shown)"
    }

    func object(_ key: String) throws -> Fields {
        guard let value = object[key] else { throw ServiceError(.invalidRequest, "missing field \(name(key))") }
        guard let dict = value as? [String: Any] else { throw ServiceError(.invalidRequest, "\(name(key)) must be an object") }
        return Fields(dict, path: name(key))
    }

    func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw ServiceError(.invalidRequest, "missing field \(name(key))") }
        return value
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw ServiceError(.invalidRequest, "\(name(key)) must be a string") }
        return s
    }

    func optionalInt(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !Self.isBoolean(number) else {
            throw ServiceError(.invalidRequest, "\(name(key)) must be an integer")
        }
        let d = number.doubleValue
        guard d.isFinite, d == d.rounded(), d >= Double(range.lowerBound), d <= Double(range.upperBound) else {
            throw ServiceError(.invalidRequest, "\(name(key)) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(d)
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !Self.isBoolean(number) else {
            throw ServiceError(.invalidRequest, "\(name(key)) must be a number")
        }
        return number.doubleValue
    }

    /// JSON true/false arrive as NSNumber too; Foundation marks them with the Objective-C
    /// type code "c" (integers from JSON are "i"/"q", fractions "d").
    static func isBoolean(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c"
    }
}
