internal import CCurl
public import Foundation

/// A failed HTTP exchange: transport failure, time-out, size bound, or (from callers that treat
/// it as one) an HTTP status.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Connection refused or reset, DNS failure, TLS failure.
        case unreachable
        /// The whole exchange did not finish within `HTTPClient.Options.timeoutSeconds`.
        case timeout
        /// An HTTP status; `HTTPClient` itself returns statuses instead of throwing them.
        case status(Int)
        /// The response body (declared or received) exceeded `limit` bytes.
        case tooLarge(limit: Int)
        /// The server's answer was not a usable HTTP response.
        case invalidResponse
    }

    public let kind: Kind
    /// Names the method, the host and what failed; never request or response bodies.
    public let message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// Worth retrying later: unreachable, timeout, HTTP 408, 429, 5xx.
    public var isTransient: Bool {
        switch kind {
        case .unreachable, .timeout: true
        case .status(let code): code == 408 || code == 429 || (500...599).contains(code)
        case .tooLarge, .invalidResponse: false
        }
    }

    public var description: String { message }
}

/// A response with any status (non-2xx statuses are not errors at this level).
public struct HTTPResponse: Sendable {
    public let status: Int
    /// Header names lower-cased.
    public let headers: [String: String]
    public let body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A bounded, synchronous HTTP(S) client over libcurl's easy interface, for executor threads
/// (it blocks the calling thread; never call it from the Swift cooperative pool).
///
/// - Every exchange must complete within `Options.timeoutSeconds` (connect, request, whole
///   response), else `.timeout`.
/// - Response bodies are bounded: a final response whose `Content-Length` is above `maxBytes`
///   fails when its header section ends, before any of the body is read, and a body without one
///   (chunked) stops being read at the chunk that would pass `maxBytes`: the caller gets
///   `.tooLarge` and at most `maxBytes` bytes were ever held. Header sections are bounded to 1 MiB.
/// - Redirects are not followed (the 3xx response is returned), so caller-supplied
///   `Authorization` headers never travel to another host. Only http and https.
/// - No cookies, no cache, no credential store; no `Expect: 100-continue` wait before bodies.
/// - Connections are kept between exchanges of one client (up to 8 idle handles).
/// - libcurl (libcurl.so.4, Debian's `libcurl4`) is loaded at the first exchange, not when the
///   process starts; when it cannot be loaded every exchange fails as `.unreachable` with the
///   reason (an installation fault an operator fixes; requests wait instead of being dropped).
public final class HTTPClient: @unchecked Sendable {
    // @unchecked: `pool` is a thread-safe C object (a mutex around its idle handles) owned here.
    public struct Options: Sendable {
        /// The limit for one whole exchange, in seconds.
        public var timeoutSeconds: Double
        /// A PEM file of extra CA certificates to trust for HTTPS (a hospital's own CA), in
        /// addition to the system store (`/etc/ssl/certs`). A file that is missing or unreadable
        /// fails each HTTPS request as `.unreachable` without connecting.
        public var caFile: String?

        public init(timeoutSeconds: Double = 30, caFile: String? = nil) {
            self.timeoutSeconds = timeoutSeconds
            self.caFile = caFile
        }
    }

    public let options: Options
    private let pool: OpaquePointer?

    public init(options: Options) {
        self.options = options
        self.pool = curlshim_pool_create()
    }

    deinit { curlshim_pool_destroy(pool) }

    /// libcurl's version, or why it cannot be loaded (for `version`).
    public static var libraryDescription: String {
        if let error = curlshim_load_error() { return String(cString: error) }
        return "libcurl " + String(cString: curlshim_version())
    }

    /// Sends one request and waits for the whole response. Non-2xx statuses are returned (not
    /// thrown) so callers can read error bodies; only transport failures, the time-out and the
    /// size bound throw.
    public func send(
        method: String, url: URL, headers: [String: String], body: [UInt8]?, maxBytes: Int
    ) throws(HTTPError) -> HTTPResponse {
        let target = Self.describe(method: method, url: url)
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw HTTPError(kind: .invalidResponse, message: "\(target): only http and https URLs with a host are supported")
        }
        let caFile = scheme == "https" ? options.caFile : nil
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw HTTPError(kind: .unreachable, message: "\(target): CA file \(caFile) is not readable")
        }
        for (name, value) in headers where !Self.isValidHeader(name: name, value: value) {
            throw HTTPError(kind: .invalidResponse, message: "\(target): header '\(name.prefix(64))' has a character a header cannot carry")
        }
        let lines = headers.map { "\($0.key): \($0.value)" }
        let limit = max(0, maxBytes)
        let timeoutMs = Int64(max(1, (options.timeoutSeconds * 1000).rounded(.up)))
        var response = curlshim_response()
        defer { curlshim_response_free(&response) }
        Self.withCStrings(lines) { headerPointers in
            method.withCString { methodPointer in
                url.absoluteString.withCString { urlPointer in
                    Self.withOptionalCString(caFile) { caPointer in
                        Self.withOptionalBytes(body) { bodyPointer, bodyLength in
                            var request = curlshim_request(
                                method: methodPointer, url: urlPointer, headers: headerPointers.baseAddress,
                                header_count: headerPointers.count, body: bodyPointer, body_length: bodyLength,
                                timeout_ms: timeoutMs, max_bytes: limit, ca_file: caPointer)
                            curlshim_send(pool, &request, &response)
                        }
                    }
                }
            }
        }
        let reason = withUnsafeBytes(of: response.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        switch curlshim_outcome(rawValue: UInt32(bitPattern: response.outcome)) {
        case CURLSHIM_OK:
            let body = response.body.map { [UInt8](UnsafeBufferPointer(start: $0, count: response.body_length)) } ?? []
            let headerText = response.headers.map {
                String(decoding: UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self),
                                                     count: response.headers_length), as: UTF8.self)
            } ?? ""
            return HTTPResponse(status: Int(response.status), headers: Self.parseHeaders(headerText), body: body)
        case CURLSHIM_TOO_LARGE:
            let what = response.declared_length > Int64(limit) ? "Content-Length \(response.declared_length)" : "the body"
            throw HTTPError(kind: .tooLarge(limit: maxBytes), message: "\(target): \(what) exceeds the limit of \(maxBytes) bytes")
        case CURLSHIM_TIMEOUT:
            throw HTTPError(kind: .timeout, message: "\(target): no complete response within \(options.timeoutSeconds) s (\(reason))")
        case CURLSHIM_INVALID_RESPONSE:
            throw HTTPError(kind: .invalidResponse, message: "\(target): invalid response (\(reason))")
        default:
            let what = response.tls != 0 ? "TLS failure" : "unreachable"
            throw HTTPError(kind: .unreachable, message: "\(target): \(what) (\(reason))")
        }
    }

    /// `send(method: "GET", ...)` without a body.
    public func get(_ url: URL, headers: [String: String] = [:], maxBytes: Int) throws(HTTPError) -> HTTPResponse {
        try send(method: "GET", url: url, headers: headers, body: nil, maxBytes: maxBytes)
    }

    /// "GET host:port" (no path or query: they may carry identifiers).
    static func describe(method: String, url: URL) -> String {
        let host = url.host ?? "?"
        return url.port.map { "\(method) \(host):\($0)" } ?? "\(method) \(host)"
    }

    /// A name of token characters and a value without line breaks or NUL (no header injection).
    static func isValidHeader(name: String, value: String) -> Bool {
        let token = Set("!#$%&'*+-.^_`|~".utf8)
        guard !name.isEmpty, name.utf8.allSatisfy({ isAlphanumericASCII($0) || token.contains($0) }) else { return false }
        return !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }

    private static func isAlphanumericASCII(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }

    /// "Name: value" lines into lower-cased names; a repeated name keeps its values joined by ", ".
    static func parseHeaders(_ text: String) -> [String: String] {
        var headers: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let earlier = headers[name] { headers[name] = earlier + ", " + value } else { headers[name] = value }
        }
        return headers
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) }
        return pointers.withUnsafeBufferPointer(body)
    }

    private static func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let string else { return body(nil) }
        return string.withCString { body($0) }
    }

    private static func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafePointer<UInt8>?, Int) -> R) -> R {
        guard let bytes else { return body(nil, 0) }
        // A non-nil pointer even for an empty body: "a body of 0 bytes" differs from "no body".
        if bytes.isEmpty { return [UInt8(0)].withUnsafeBufferPointer { body($0.baseAddress, 0) } }
        return bytes.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
    }
}
