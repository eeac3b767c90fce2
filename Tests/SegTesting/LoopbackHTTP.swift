import Foundation

/// A plain HTTP/1.1 client for tests on 127.0.0.1: sends the raw request, reads until the
/// server closes the connection.
public enum LoopbackHTTP {
    /// The whole raw response, or nil when nothing listens on `port`.
    public static func exchange(port: Int, _ request: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { return nil }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    /// GET http://127.0.0.1:port/path -> (status, body); nil when nothing answers.
    public static func get(port: Int, _ path: String) -> (status: Int, body: String)? {
        guard let text = exchange(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
              text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)),
              let split = text.range(of: "\r\n\r\n") else { return nil }
        return (status, String(text[split.upperBound...]))
    }

    /// A port on 127.0.0.1 that was free a moment ago.
    public static func freePort() throws -> Int {
        guard let port = bindAndRelease(0) else { throw POSIXError(.EADDRINUSE) }
        return port
    }

    /// A free port on 127.0.0.1 below the kernel's ephemeral range, for a port a test leaves
    /// unbound for a while (a broker that is down at first): `freePort` of other tests running
    /// meanwhile (port 0, always in the ephemeral range) can never hand it out. Before, another
    /// test's broker got such a port, and the waiting test's worker consumed that test's requests.
    public static func portOutsideEphemeralRange() throws -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        let low = range?.first ?? 32768
        guard low > 11000 else { throw POSIXError(.EADDRINUSE) }
        for _ in 0..<200 {
            if let port = bindAndRelease(Int.random(in: 10000..<(low - 1000))) { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }

    /// Binds 127.0.0.1:`port` (0: any), closes it again and returns the port bound; nil when taken.
    private static func bindAndRelease(_ port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        guard rc == 0 else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
