internal import Foundation
internal import SegDICOMweb

/// A segmentation request as it arrives on the requests topic (JSON, schema
/// Config/schemas/request.v1.schema.json). Parsing is strict: unknown fields, wrong types and
/// values out of bounds are `invalid_request` errors naming the field.
public struct SegmentationRequest: Sendable, Equatable {
    public enum Image: Sendable, Equatable {
        case png([UInt8])
        case storePath(String)
        /// A series (or some of its instances) on a configured DICOMweb server.
        case dicomweb(DICOMwebReference)
        /// One DICOM Part-10 object (single or multi-frame).
        case dicom([UInt8])
    }

    /// `image.dicomweb`: `server` names a DICOMweb server of the worker's configuration (never a
    /// URL, so a request cannot make the worker fetch an arbitrary address).
    public struct DICOMwebReference: Sendable, Equatable {
        public var server: String
        public var studyUID: String
        public var seriesUID: String
        /// nil: every instance of the series.
        public var instanceUIDs: [String]?
        public init(server: String, studyUID: String, seriesUID: String, instanceUIDs: [String]?) {
            self.server = server
            self.studyUID = studyUID
            self.seriesUID = seriesUID
            self.instanceUIDs = instanceUIDs
        }
    }

    /// Where a DICOM SEG goes (`output`).
    public struct Output: Sendable, Equatable {
        /// false: the SEG is not stored but travels base64 in the result. nil: stored when there is a server.
        public var stow: Bool?
        /// The server to store the SEG on; default the source server.
        public var dicomwebServer: String?
        public static let `default` = Output(stow: nil, dicomwebServer: nil)
        public init(stow: Bool?, dicomwebServer: String?) {
            self.stow = stow
            self.dicomwebServer = dicomwebServer
        }
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
    public var output: Output = .default

    /// Whether the image is DICOM (a SEG is produced).
    public var isDICOM: Bool {
        switch image {
        case .dicomweb, .dicom: true
        case .png, .storePath: false
        }
    }

    /// Limits on request contents.
    public struct Limits: Sendable {
        public var maxImageBytes = 32 << 20
        public var maxSupportSize = 256
        public var maxEnsemble = 32
        /// At most this many entries in image.dicomweb.instance_uids (dicom.max_frames).
        public var maxInstances = 512
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
        try fields.allow(["request_id", "support_set", "image", "options", "ground_truth", "output"])
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
        try imageFields.allow(["png_base64", "store_path", "dicomweb", "dicom_base64"])
        let given = ["png_base64", "store_path", "dicomweb", "dicom_base64"].filter { imageFields.has($0) }
        guard given.count == 1 else {
            throw ServiceError(.invalidRequest, "image must have exactly one of png_base64, store_path, dicomweb and dicom_base64")
        }
        let image: Image
        switch given[0] {
        case "png_base64":
            image = .png(try decodeBase64(try imageFields.string("png_base64"), field: "image.png_base64", maxBytes: limits.maxImageBytes))
        case "store_path":
            let path = try imageFields.string("store_path")
            guard path.count <= 1024, !path.isEmpty else { throw ServiceError(.invalidRequest, "image.store_path must be 1-1024 characters") }
            image = .storePath(path)
        case "dicom_base64":
            image = .dicom(try decodeBase64(try imageFields.string("dicom_base64"), field: "image.dicom_base64", maxBytes: limits.maxImageBytes))
        default:
            var web = try imageFields.object("dicomweb")
            try web.allow(["server", "study_uid", "series_uid", "instance_uids"])
            let server = try web.string("server")
            guard isValidName(server) else { throw ServiceError(.invalidRequest, "image.dicomweb.server must be 1-128 characters of [A-Za-z0-9._-]") }
            let study = try web.string("study_uid"), series = try web.string("series_uid")
            guard DICOMUID.isValid(study) else { throw ServiceError(.invalidRequest, "image.dicomweb.study_uid is not a valid DICOM UID") }
            guard DICOMUID.isValid(series) else { throw ServiceError(.invalidRequest, "image.dicomweb.series_uid is not a valid DICOM UID") }
            let instances = try web.optionalStringArray("instance_uids", count: 1...limits.maxInstances)
            if let instances {
                guard instances.allSatisfy(DICOMUID.isValid) else {
                    throw ServiceError(.invalidRequest, "image.dicomweb.instance_uids must hold valid DICOM UIDs")
                }
                guard Set(instances).count == instances.count else {
                    throw ServiceError(.invalidRequest, "image.dicomweb.instance_uids must not repeat a UID")
                }
            }
            image = .dicomweb(DICOMwebReference(server: server, studyUID: study, seriesUID: series, instanceUIDs: instances))
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
        var output = Output.default
        if fields.has("output") {
            var o = try fields.object("output")
            try o.allow(["stow", "dicomweb_server"])
            output.stow = try o.optionalBool("stow")
            output.dicomwebServer = try o.optionalString("dicomweb_server")
            if let name = output.dicomwebServer, !isValidName(name) {
                throw ServiceError(.invalidRequest, "output.dicomweb_server must be 1-128 characters of [A-Za-z0-9._-]")
            }
        }
        switch image {
        case .dicom, .dicomweb:
            if groundTruth != nil { throw ServiceError(.invalidRequest, "ground_truth is only for PNG images") }
        case .png, .storePath:
            if fields.has("output") { throw ServiceError(.invalidRequest, "output is only for DICOM images") }
        }
        return SegmentationRequest(requestID: id, supportSetID: setID, supportSetVersion: version, image: image,
                                   options: options, groundTruth: groundTruth, output: output)
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

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, Self.isBoolean(number) else {
            throw ServiceError(.invalidRequest, "\(name(key)) must be true or false")
        }
        return number.boolValue
    }

    func optionalStringArray(_ key: String, count: ClosedRange<Int>) throws -> [String]? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        let array = value as? [Any]
        let strings = array?.compactMap { $0 as? String } ?? []
        guard let array, strings.count == array.count else {
            throw ServiceError(.invalidRequest, "\(name(key)) must be an array of strings")
        }
        guard count.contains(strings.count) else {
            throw ServiceError(.invalidRequest, "\(name(key)) must have \(count.lowerBound)-\(count.upperBound) entries")
        }
        return strings
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
