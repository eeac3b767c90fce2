internal import Dispatch
public import Foundation
#if canImport(FoundationNetworking)
internal import FoundationNetworking
#endif
internal import Synchronization

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

/// A bounded, synchronous HTTP(S) client over URLSession, for executor threads (it blocks the
/// calling thread; never call it from the Swift cooperative pool).
///
/// - Every exchange must complete within `Options.timeoutSeconds` (connect, request, whole
///   response), else `.timeout`.
/// - Response bodies are bounded: a `Content-Length` above `maxBytes` fails before the body is
///   read, and a body without one (chunked) is cancelled as soon as the data delegate has seen
///   more than `maxBytes` bytes; the caller gets `.tooLarge` at once and the collected body never
///   exceeds `maxBytes`. Limit: swift-corelibs-foundation hands body chunks from libcurl to the
///   delegate queue asynchronously, so libcurl may read (and queue) somewhat more before the
///   cancel lands; with a server pacing ~64 MiB/s that was a few MiB, but a loopback sender
///   flooding both cores of a 2-core machine was read for seconds (hundreds of MiB) before it.
/// - Callers should be dedicated threads: waiting here from Dispatch's global queues can starve
///   URLSession's own Dispatch work on Linux (stalls of seconds were seen in tests).
/// - Redirects are not followed (the 3xx response is returned), so caller-supplied
///   `Authorization` headers never travel to another host.
/// - No cookies, no cache, no credential store.
public final class HTTPClient: Sendable {
    public struct Options: Sendable {
        /// The limit for one whole exchange, in seconds.
        public var timeoutSeconds: Double
        /// A PEM file of extra CA certificates to trust for HTTPS.
        ///
        /// Limit on Linux: swift-corelibs-foundation's URLSession gives no per-session (or
        /// per-process) way to add a CA. Its libcurl easy handle uses libcurl's built-in CA
        /// bundle, else the first system bundle it finds (`/etc/ssl/certs/ca-certificates.crt`,
        /// ...); the `URLSessionCertificateAuthorityInfoFile` variable is read on Android only,
        /// and server-trust challenges are not delivered to delegates. So on Linux the CA must be
        /// installed into the system store (Debian: copy it to `/usr/local/share/ca-certificates/`
        /// and run `update-ca-certificates`). This client checks that the file is readable
        /// (a missing file fails each HTTPS request as `.unreachable`) and names the limit in TLS
        /// failure messages; it cannot make libcurl trust the file.
        public var caFile: String?

        public init(timeoutSeconds: Double = 30, caFile: String? = nil) {
            self.timeoutSeconds = timeoutSeconds
            self.caFile = caFile
        }
    }

    public let options: Options
    private let session: URLSession
    private let delegate: SessionDelegate

    public init(options: Options) {
        self.options = options
        let configuration = URLSessionConfiguration.ephemeral
        // The deadline is enforced by `send` itself (a semaphore wait, then cancel); the session's
        // own timers only back it up.
        configuration.timeoutIntervalForRequest = max(1, options.timeoutSeconds.rounded(.up) + 1)
        configuration.timeoutIntervalForResource = max(1, options.timeoutSeconds.rounded(.up) + 1)
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.urlCredentialStorage = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let delegate = SessionDelegate()
        let queue = OperationQueue()
        queue.name = "SegHTTP.HTTPClient"
        queue.maxConcurrentOperationCount = 1  // delegate calls in order (body chunks are appended)
        self.delegate = delegate
        self.session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
    }

    deinit { session.invalidateAndCancel() }

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
        if scheme == "https", let caFile = options.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw HTTPError(kind: .unreachable, message: "\(target): CA file \(caFile) is not readable")
        }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = max(1, options.timeoutSeconds.rounded(.up) + 1)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body) }

        let exchange = Exchange(maxBytes: max(0, maxBytes))
        let task = session.dataTask(with: request)
        delegate.register(exchange, for: task.taskIdentifier)
        task.resume()
        let deadline = DispatchTime.now() + options.timeoutSeconds
        if exchange.done.wait(timeout: deadline) == .timedOut {
            delegate.unregister(task.taskIdentifier)
            // corelibs' cancel() waits for the session's work queue; do not make the caller wait.
            DispatchQueue.global().async { task.cancel() }
            throw HTTPError(kind: .timeout, message: "\(target): no complete response within \(options.timeoutSeconds) s")
        }
        delegate.unregister(task.taskIdentifier)
        return try exchange.result(target: target, maxBytes: maxBytes, caFile: scheme == "https" ? options.caFile : nil)
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
}

/// The state of one request, shared between the waiting caller and the delegate queue.
final class Exchange: Sendable {
    struct State {
        var response: HTTPURLResponse?
        var body: [UInt8] = []
        var overLimit = false
        var declaredLength: Int64?
        var error: (any Error)?
        var finished = false
    }

    let maxBytes: Int
    let done = DispatchSemaphore(value: 0)
    let state = Mutex(State())

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Over the limit: wakes the caller at once (it reports `.tooLarge`; libcurl's completion
    /// can come much later under load) and cancels the task. Called on the delegate queue.
    func finish(task: URLSessionTask) {
        let signal = state.withLock { state -> Bool in
            guard !state.finished else { return false }
            state.finished = true
            return true
        }
        if signal { done.signal() }
        task.cancel()
    }

    /// Called once the task completed (the semaphore was signalled).
    func result(target: String, maxBytes: Int, caFile: String?) throws(HTTPError) -> HTTPResponse {
        let snapshot = state.withLock { state -> (HTTPURLResponse?, [UInt8], Bool, Int64?, (any Error)?) in
            let copy = (state.response, state.body, state.overLimit, state.declaredLength, state.error)
            state.body = []
            return copy
        }
        let (response, body, overLimit, declared, error) = snapshot
        if overLimit {
            let what = declared.map { "Content-Length \($0)" } ?? "the body"
            throw HTTPError(kind: .tooLarge(limit: maxBytes), message: "\(target): \(what) exceeds the limit of \(maxBytes) bytes")
        }
        if let error { throw Self.map(error, target: target, caFile: caFile) }
        guard let response else {
            throw HTTPError(kind: .invalidResponse, message: "\(target): no HTTP response")
        }
        var headers: [String: String] = [:]
        for (name, value) in response.allHeaderFields {
            guard let name = name as? String, let value = value as? String else { continue }
            headers[name.lowercased()] = value
        }
        return HTTPResponse(status: response.statusCode, headers: headers, body: body)
    }

    static func map(_ error: any Error, target: String, caFile: String?) -> HTTPError {
        let nsError = error as NSError
        let reason = nsError.localizedDescription
        guard nsError.domain == NSURLErrorDomain else {
            return HTTPError(kind: .unreachable, message: "\(target): \(reason)")
        }
        switch nsError.code {
        case NSURLErrorTimedOut:
            return HTTPError(kind: .timeout, message: "\(target): timed out (\(reason))")
        case NSURLErrorBadServerResponse, NSURLErrorCannotDecodeRawData, NSURLErrorCannotDecodeContentData,
            NSURLErrorCannotParseResponse, NSURLErrorZeroByteResource:
            return HTTPError(kind: .invalidResponse, message: "\(target): invalid response (\(reason))")
        case NSURLErrorSecureConnectionFailed, NSURLErrorServerCertificateHasBadDate, NSURLErrorServerCertificateUntrusted,
            NSURLErrorServerCertificateHasUnknownRoot, NSURLErrorServerCertificateNotYetValid,
            NSURLErrorClientCertificateRejected, NSURLErrorClientCertificateRequired:
            #if os(Linux)
            let hint = caFile.map {
                "; note: FoundationNetworking on Linux cannot load caFile \($0), the CA must be in the system trust store"
            } ?? ""
            #else
            let hint = ""
            #endif
            return HTTPError(kind: .unreachable, message: "\(target): TLS failure (\(reason))\(hint)")
        default:
            return HTTPError(kind: .unreachable, message: "\(target): \(reason) (URL error \(nsError.code))")
        }
    }
}

/// One delegate for the session; it finds each task's `Exchange` by task identifier.
final class SessionDelegate: NSObject, URLSessionDataDelegate, Sendable {
    private let exchanges = Mutex<[Int: Exchange]>([:])

    func register(_ exchange: Exchange, for task: Int) { exchanges.withLock { $0[task] = exchange } }

    func unregister(_ task: Int) { _ = exchanges.withLock { $0.removeValue(forKey: task) } }

    private func exchange(_ task: URLSessionTask) -> Exchange? { exchanges.withLock { $0[task.taskIdentifier] } }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        guard let exchange = exchange(dataTask) else { return completionHandler(.cancel) }
        let http = response as? HTTPURLResponse
        let declared = response.expectedContentLength
        let refuse = exchange.state.withLock { state -> Bool in
            state.response = http
            if declared >= 0 && declared > Int64(exchange.maxBytes) {
                state.overLimit = true
                state.declaredLength = declared
                return true
            }
            return false
        }
        if refuse {
            completionHandler(.cancel)
            exchange.finish(task: dataTask)
        } else {
            completionHandler(.allow)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let exchange = exchange(dataTask) else { return dataTask.cancel() }
        let overLimit = exchange.state.withLock { state -> Bool in
            guard !state.overLimit else { return true }
            if state.body.count + data.count > exchange.maxBytes {
                state.overLimit = true
                state.body = []
                return true
            }
            state.body.append(contentsOf: data)
            return false
        }
        if overLimit { exchange.finish(task: dataTask) }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)  // return the 3xx itself
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let exchange = exchange(task) else { return }
        let signal = exchange.state.withLock { state -> Bool in
            guard !state.finished else { return false }
            state.finished = true
            if let error, !state.overLimit { state.error = error }
            return true
        }
        if signal { exchange.done.signal() }
    }
}
