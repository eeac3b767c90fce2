internal import Foundation
internal import Synchronization

/// A minimal HTTP/1.1 server for operational endpoints (/metrics, /healthz, /readyz) on POSIX
/// sockets and one dedicated thread: GET and HEAD only, one request per connection, request
/// head bounded to 8 KiB and read with a 2 s timeout, `Connection: close`. Enough for
/// Prometheus scrapes and probes, without a networking framework.
public final class HTTPEndpoint: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.init(status: status, contentType: contentType, bytes: Array(body.utf8))
        }
        public init(status: Int, contentType: String, bytes: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = bytes
        }
    }

    public struct BindError: Error, CustomStringConvertible {
        public let description: String
    }

    public typealias Handler = @Sendable (_ path: String) -> Response

    private let socket: Int32
    /// The bound port (useful with port 0).
    public let port: Int
    private let handler: Handler
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Binds and listens on `address` ("host:port", "[v6]:port"); throws a clear error when the
    /// address is malformed or in use. Serving starts with `start()`.
    public init(address: String, handler: @escaping Handler) throws {
        let (host, service) = try Self.split(address)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, service, &hints, &list)
        guard rc == 0, let first = list else {
            throw BindError(description: "metrics address \(address): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        let fd = Foundation.socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BindError(description: "metrics address \(address): socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw BindError(description: "metrics address \(address): \(message)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let port = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        } == 0 ? Self.port(of: storage) : 0
        self.socket = fd
        self.port = port
        self.handler = handler
    }

    /// Serves on a dedicated thread until `stop()`.
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        thread.name = "universeg-http"
        thread.start()
    }

    /// Stops accepting, waits for the serving thread and closes the socket.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if started.load(ordering: .acquiring) { _ = finished.wait(timeout: .now() + 3) }
        close(socket)
    }

    private func serve() {
        while !stopped.load(ordering: .acquiring) {
            var p = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let client = accept(socket, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            head.append(contentsOf: buffer[0..<n])
            if head.count >= 4, Self.containsEndOfHead(head) { break }
        }
        let response: Response
        var includeBody = true
        if let (method, target) = Self.requestLine(head) {
            let path = String(target.prefix { $0 != "?" })
            switch method {
            case "GET": response = handler(path)
            case "HEAD": response = handler(path); includeBody = false
            default: response = Response(status: 405, body: "method not allowed\n")
            }
        } else {
            response = Response(status: 400, body: "bad request\n")
        }
        let body = response.body
        var text = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        text += "Content-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var bytes = Array(text.utf8)
        if includeBody { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    // MARK: - Parsing

    static func split(_ address: String) throws -> (String, String) {
        let host: Substring, port: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else {
                throw BindError(description: "metrics address \(address): expected [ipv6]:port")
            }
            host = address[address.index(after: address.startIndex)..<close]
            port = address[address.index(close, offsetBy: 2)...]
        } else {
            guard let colon = address.lastIndex(of: ":") else {
                throw BindError(description: "metrics address \(address): expected host:port")
            }
            host = address[..<colon]
            port = address[address.index(after: colon)...]
        }
        guard let number = Int(port), (0...65535).contains(number), !host.isEmpty else {
            throw BindError(description: "metrics address \(address): expected host:port with a port 0-65535")
        }
        return (String(host), String(number))
    }

    static func containsEndOfHead(_ bytes: [UInt8]) -> Bool {
        let end: [UInt8] = [13, 10, 13, 10]
        return bytes.count >= 4 && (0...(bytes.count - 4)).contains { bytes[$0..<($0 + 4)].elementsEqual(end) }
    }

    /// "GET /metrics HTTP/1.1" -> ("GET", "/metrics").
    static func requestLine(_ head: [UInt8]) -> (String, String)? {
        guard let end = head.firstIndex(of: 13) ?? head.firstIndex(of: 10),
              let line = String(bytes: head[..<end], encoding: .ascii) else { return nil }
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }

    static func port(of storage: sockaddr_storage) -> Int {
        var copy = storage
        return withUnsafePointer(to: &copy) { p in
            switch Int32(storage.ss_family) {
            case AF_INET: p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            case AF_INET6: p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            default: 0
            }
        }
    }
}
