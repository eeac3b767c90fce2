internal import Foundation
public import SegIO
internal import SegHTTP

/// The shared store of support sets: `<root>/<id>/<version>/support.json` (the format of
/// `SupportSetDirectory`) and `<root>/<id>/LATEST`, a text file naming the current version.
///
/// Backends: `file:///path` (or a plain path: a local or shared mount) and `http(s)://host/prefix`
/// (GET from a static server such as nginx). Ids and versions are validated before any path is
/// built (`[A-Za-z0-9._-]`, no traversal), and every read is bounded in size.
///
/// Failures of the store itself are transient (`ServiceError.unavailable("store", ...)`): the
/// server cannot be reached, times out or answers 5xx/429/408/401/403, the store root is missing
/// or unreadable (an NFS mount gone, ESTALE), a read fails (EIO). A missing file under a readable
/// root is the request's (or the support set's) fault.
public struct SupportSetStore: Sendable {
    public enum Backend: Sendable, Equatable {
        case directory(String)
        /// Base URL of the store (without a trailing slash).
        case http(String)
    }

    public let backend: Backend
    public let limits: SupportSetLimits
    public let httpTimeout: Double
    /// One client for every fetch from an http(s) store: its connections are kept between fetches.
    private let http: HTTPClient

    public init(url: String, limits: SupportSetLimits = SupportSetLimits(), httpTimeout: Double = 10) throws {
        if url.hasPrefix("http://") || url.hasPrefix("https://") {
            guard let parsed = URL(string: url.hasSuffix("/") ? String(url.dropLast()) : url), parsed.host != nil else {
                throw ServiceError(.internal, "store URL '\(url)' is not a valid http(s) URL")
            }
            backend = .http(parsed.absoluteString)
        } else if url.hasPrefix("file://") {
            backend = .directory(String(url.dropFirst("file://".count)))
        } else if url.hasPrefix("/") || url.hasPrefix(".") {
            backend = .directory(url)
        } else {
            throw ServiceError(.internal, "store URL '\(url)' must start with file://, http://, https:// or /")
        }
        self.limits = limits
        self.httpTimeout = httpTimeout
        self.http = HTTPClient(options: .init(timeoutSeconds: httpTimeout))
    }

    /// The version LATEST names for `id`.
    public func latestVersion(of id: String) throws -> String {
        try checkName(id, "support_set.id")
        let bytes = try read("\(id)/LATEST", maxBytes: 256, missing: .supportSetNotFound, what: "support set '\(id)'")
        let version = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard SegmentationRequest.isValidName(version) else {
            throw ServiceError(.supportSetInvalid, "LATEST of support set '\(id)' does not name a valid version")
        }
        return version
    }

    /// Manifest bytes of `id`/`version`.
    public func manifest(id: String, version: String) throws -> [UInt8] {
        try checkName(id, "support_set.id")
        try checkName(version, "support_set.version")
        return try read("\(id)/\(version)/support.json", maxBytes: limits.maxManifestBytes, missing: .supportSetNotFound,
                        what: "support set '\(id)' version '\(version)'")
    }

    /// Loads and preprocesses `id`/`version` for a model input size.
    public func load(id: String, version: String, manifestBytes: [UInt8], size: Int) throws -> LoadedSupportSet {
        do {
            let manifest = try SupportSetDirectory.parseManifest(manifestBytes, limits: limits)
            return try SupportSetDirectory.build(manifest: manifest, manifestBytes: manifestBytes, size: size, limits: limits) {
                try read("\(id)/\(version)/\($0)", maxBytes: limits.maxImageFileBytes, missing: .supportSetInvalid,
                         what: "a file of support set '\(id)'")
            }
        } catch let error as IOError {
            throw ServiceError(.supportSetInvalid, error.message)
        }
    }

    /// An image named by a request's `store_path` (a relative path inside the store).
    public func image(storePath: String) throws -> [UInt8] {
        let parts = storePath.split(separator: "/", omittingEmptySubsequences: false)
        guard !storePath.hasPrefix("/"), parts.allSatisfy({ SegmentationRequest.isValidName(String($0)) }) else {
            throw ServiceError(.invalidRequest, "image.store_path must be a relative path of [A-Za-z0-9._-] components")
        }
        return try read(storePath, maxBytes: limits.maxImageFileBytes, missing: .invalidRequest, what: "image.store_path")
    }

    static func isReadableDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && Int(info.st_mode) & Int(S_IFMT) == Int(S_IFDIR) && access(path, R_OK | X_OK) == 0
    }

    private func checkName(_ name: String, _ field: String) throws {
        guard SegmentationRequest.isValidName(name) else {
            throw ServiceError(.invalidRequest, "\(field) must be 1-128 characters of [A-Za-z0-9._-]")
        }
    }

    private func read(_ relative: String, maxBytes: Int, missing: ServiceError.Code, what: String) throws -> [UInt8] {
        switch backend {
        case .directory(let root):
            do {
                return try FileIO.read(root + "/" + relative, maxBytes: maxBytes)
            } catch let error as IOError {
                switch error.code {
                case .fileNotFound:
                    // ENOENT, ESTALE and EACCES all look like a missing file; only a root that
                    // is itself there and readable makes it the request's fault.
                    guard Self.isReadableDirectory(root) else {
                        throw ServiceError.unavailable("store", "the store root cannot be read (missing mount?)")
                    }
                    throw ServiceError(missing, "\(what) not found in the store")
                case .notARegularFile:
                    // A directory (or FIFO, device) where a file should be: a request naming it
                    // is wrong; a support set containing it is broken.
                    throw ServiceError(missing == .invalidRequest ? .invalidRequest : .supportSetInvalid,
                                       "\(what) is not a regular file in the store")
                case .fileTooLarge: throw ServiceError(missing == .invalidRequest ? .imageTooLarge : .supportSetInvalid,
                                                       "\(what): file above \(maxBytes) bytes")
                default: throw ServiceError.unavailable("store", "\(what): the store could not be read")
                }
            }
        case .http(let base):
            guard let url = URL(string: base + "/" + relative) else {
                throw ServiceError(.internal, "\(what): cannot build a store URL")
            }
            return try httpGet(url, maxBytes: maxBytes, missing: missing, what: what)
        }
    }

    private func httpGet(_ url: URL, maxBytes: Int, missing: ServiceError.Code, what: String) throws -> [UInt8] {
        // Bounded while reading: a Content-Length above maxBytes fails before the body is read,
        // a longer body without one is cut off as it arrives.
        let response: HTTPResponse
        do {
            response = try http.get(url, maxBytes: maxBytes)
        } catch {
            switch error.kind {
            case .tooLarge:
                throw ServiceError(missing == .invalidRequest ? .imageTooLarge : .supportSetInvalid, "\(what): above \(maxBytes) bytes")
            case .timeout:
                throw ServiceError.unavailable("store", "\(what): the store did not answer within \(Int(httpTimeout)) s")
            case .unreachable, .invalidResponse, .status:
                // No usable HTTP answer at all: refused, reset, DNS or TLS failure.
                throw ServiceError.unavailable("store", "\(what): the store could not be reached")
            }
        }
        let status = response.status
        if status == 404 || status == 410 { throw ServiceError(missing, "\(what) not found in the store") }
        if [408, 429, 401, 403].contains(status) || (500...599).contains(status) {
            throw ServiceError.unavailable("store", "\(what): the store answered HTTP \(status)")
        }
        guard status == 200 else { throw ServiceError(.internal, "\(what): the store answered HTTP \(status)") }
        return response.body
    }
}
