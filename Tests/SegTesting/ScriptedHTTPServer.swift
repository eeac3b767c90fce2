import Foundation
import Glibc
import Synchronization

/// A tiny HTTP/1.1 server on a free 127.0.0.1 port whose answer to each request is scripted, for
/// testing clients against behaviour real servers rarely show on demand: a huge declared body,
/// an endless chunked body, a server that accepts and never answers. One thread accepts, one
/// thread serves each connection; every answer closes its connection. Call ``stop()`` in a
/// `defer`.
public final class ScriptedHTTPServer: Sendable {
    /// What to do with one request.
    public enum Behavior: Sendable {
        /// Write these raw bytes (status line, headers, body) and close.
        case respond([UInt8])
        /// Write `head` (status line and headers), then `chunk` up to `count` times with
        /// `pauseMicroseconds` between chunks, stopping at the first failed write (the client
        /// closed), then close.
        case stream(head: [UInt8], chunk: [UInt8], count: Int, pauseMicroseconds: UInt32 = 0)
        /// Read the request and never answer (the connection stays open until ``stop()``).
        case hang
    }

    /// The request line and headers of one request (no body).
    public struct Request: Sendable {
        public let head: String
        public let bodyLength: Int
    }

    public let port: Int
    private let listener: Int32
    private let behavior: @Sendable (Request) -> Behavior
    private let stopped = Atomic<Bool>(false)
    private let state = Mutex<(requests: [Request], written: Int, open: [Int32])>(([], 0, []))

    /// Every request received so far.
    public var requests: [Request] { state.withLock { $0.requests } }
    /// Bytes successfully written by `.stream` answers (head and chunks), over all connections.
    public var bytesWritten: Int { state.withLock { $0.written } }

    public init(_ behavior: @escaping @Sendable (Request) -> Behavior) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 && listen(fd, 16) == 0
            }
        }
        guard ok else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        self.behavior = behavior
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    /// Closes the listener and every open connection. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        let open = state.withLock { $0.open }
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        defer { close(listener) }
        while !stopped.load(ordering: .acquiring) {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            state.withLock { $0.open.append(client) }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            state.withLock { $0.open.removeAll { $0 == fd } }
            close(fd)
        }
        guard let request = readRequest(fd) else { return }
        state.withLock { $0.requests.append(request) }
        switch behavior(request) {
        case .respond(let bytes):
            _ = write(fd, bytes)
            shutdown(fd, Int32(SHUT_WR))
            drain(fd)
        case .stream(let head, let chunk, let count, let pause):
            guard write(fd, head) else { return }
            state.withLock { $0.written += head.count }
            for _ in 0..<count {
                guard !stopped.load(ordering: .acquiring), write(fd, chunk) else { return }
                state.withLock { $0.written += chunk.count }
                if pause > 0 { usleep(pause) }
            }
        case .hang:
            while !stopped.load(ordering: .acquiring) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 100) > 0 {
                    var byte = [UInt8](repeating: 0, count: 512)
                    if recv(fd, &byte, byte.count, 0) <= 0 { return }  // the client gave up
                }
            }
        }
    }

    /// Reads the head and a Content-Length body (discarded); nil if the client closed first.
    private func readRequest(_ fd: Int32) -> Request? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            if let end = Self.find(separator, in: received) {
                let head = String(decoding: received[..<end], as: UTF8.self)
                var length = 0
                for line in head.split(separator: "\r\n") {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        length = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
                var body = received.count - end - 4
                while body < length {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { return nil }
                    body += n
                }
                return Request(head: head, bodyLength: length)
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            received += buffer[0..<n]
        }
    }

    /// Reads until the client closes (so the answer is not cut off by a reset), at most 2 s.
    private func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<20 {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) >= 0 else { return }
            if poller.revents != 0 && recv(fd, &buffer, buffer.count, 0) <= 0 { return }
        }
    }

    /// Writes everything; false once the peer is gone (no SIGPIPE).
    private func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i
        }
        return nil
    }

    /// A complete response with Content-Length and `Connection: close`.
    public static func response(status: Int, reason: String, headers: [String: String] = [:], body: [UInt8] = []) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + body
    }
}
