public import Foundation
import Glibc
import Synchronization

/// Orthanc (Debian's `orthanc` package) with the DICOMweb plugin (`orthanc-dicomweb`) as a
/// throwaway PACS for one test: free loopback HTTP and DICOM ports, its own JSON configuration
/// and storage in a temporary directory, no authentication.
///
/// Orthanc runs under a `/bin/sh` guard that SIGKILLs it when the guard gets SIGTERM (``stop()``,
/// `deinit`) and within 0.2 s of the test process dying, so no Orthanc outlives the tests. Data
/// is thrown away, so it is SIGKILLed rather than shut down (a graceful stop takes 3-5 s). Call
/// ``stop()`` in a `defer`. Starting blocks the calling thread; async tests use ``start()``.
///
/// For failure tests: ``suspend()``/``resume()`` (SIGSTOP/SIGCONT: a hung PACS whose sockets
/// still accept connections), ``kill()`` then ``restart()`` (an outage and the return of the same
/// server: same ports, same storage).
public final class OrthancServer: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        case startFailed(String)
        case requestFailed(String)
        public var description: String {
            switch self {
            case .unavailable(let text), .startFailed(let text), .requestFailed(let text): text
            }
        }
    }

    public static let binary = "/usr/sbin/Orthanc"
    public static let dicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

    /// Why Orthanc tests cannot run here, or nil when they can.
    public static var skipReason: String? {
        let files = FileManager.default
        if !files.isExecutableFile(atPath: binary) {
            return "\(binary) is missing: apt-get install orthanc orthanc-dicomweb (Scripts/test does this)"
        }
        if !files.fileExists(atPath: dicomWebPlugin) {
            return "\(dicomWebPlugin) is missing: apt-get install orthanc-dicomweb"
        }
        return nil
    }

    public static var isAvailable: Bool { skipReason == nil }

    /// `$0` is Orthanc, `$@` its arguments, `$ORTHANC_PID_FILE` where the child's pid goes.
    private static let guardScript = """
        "$0" "$@" </dev/null & child=$!
        echo $child > "$ORTHANC_PID_FILE"
        trap 'kill -KILL $child 2>/dev/null; wait $child; exit 0' TERM INT
        while kill -0 $PPID 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done
        kill -KILL $child 2>/dev/null; wait $child
        """

    public let httpPort: Int
    public let dicomPort: Int
    /// The temporary directory: `orthanc.json`, `db/`, `orthanc.log`.
    public let directory: String
    /// Orthanc's `Name` for this server, unique per server (see `init`).
    private let name: String
    private let running = Mutex<(guardProcess: Process, pid: Int32)?>(nil)
    private let stopped = Atomic<Bool>(false)

    /// `http://127.0.0.1:{httpPort}/dicom-web`
    public var dicomWebURL: URL { URL(string: "http://127.0.0.1:\(httpPort)/dicom-web")! }

    /// The Orthanc log so far (for failure messages).
    public var log: String {
        (try? String(contentsOfFile: directory + "/orthanc.log", encoding: .utf8)).map { String($0.suffix(4000)) } ?? ""
    }

    public init(timeout: Duration = .seconds(15)) throws {
        if let reason = Self.skipReason { throw Failure.unavailable(reason) }
        let id = UUID().uuidString
        directory = NSTemporaryDirectory() + "orthanc-" + id
        // Its own name, checked in /system before it counts as started: with tests starting
        // servers side by side, a free port can be taken by another test's Orthanc between
        // choosing it and binding it, and the readiness check must not take that one for ours.
        name = "ORTHANC_IT_" + id.prefix(8)
        try FileManager.default.createDirectory(atPath: directory + "/db", withIntermediateDirectories: true)
        var lastError = "no attempt"
        for _ in 0..<3 {
            let http = try LoopbackHTTP.freePort()
            var dicom = try LoopbackHTTP.freePort()
            while dicom == http { dicom = try LoopbackHTTP.freePort() }
            let configuration: [String: Any] = [
                "Name": name, "StorageDirectory": directory + "/db", "IndexDirectory": directory + "/db",
                "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC_IT",
                "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
                "Plugins": [Self.dicomWebPlugin],
                "DicomWeb": ["Enable": true, "Root": "/dicom-web/", "Host": "127.0.0.1:\(http)", "Ssl": false],
            ]
            let json = try JSONSerialization.data(withJSONObject: configuration, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: URL(fileURLWithPath: directory + "/orthanc.json"))
            do {
                running.withLock { $0 = nil }
                let started = try Self.launch(directory: directory, httpPort: http, name: name, timeout: timeout)
                running.withLock { $0 = started }
                httpPort = http
                dicomPort = dicom
                return
            } catch {
                lastError = "\(error)"
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw Failure.startFailed("Orthanc did not start: \(lastError)")
    }

    deinit { stop() }

    /// Starts Orthanc on a Dispatch thread (the Swift cooperative pool must not block).
    public static func start() async throws -> OrthancServer {
        try await onThread { try OrthancServer() }
    }

    /// Runs the guard shell and waits until `GET /dicom-web/studies` answers 200 from the Orthanc
    /// named `name` (`GET /system`).
    private static func launch(directory: String, httpPort: Int, name: String, timeout: Duration) throws -> (guardProcess: Process, pid: Int32) {
        let pidFile = directory + "/orthanc.pid"
        try? FileManager.default.removeItem(atPath: pidFile)
        let logPath = directory + "/orthanc.log"
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw Failure.startFailed("cannot write \(logPath)") }
        _ = try? log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", guardScript, binary, directory + "/orthanc.json"]
        var environment = ProcessInfo.processInfo.environment
        environment["ORTHANC_PID_FILE"] = pidFile
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pid: Int32?
        while clock.now < deadline {
            guard process.isRunning else { break }
            if pid == nil, let text = try? String(contentsOfFile: pidFile, encoding: .utf8) {
                pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if let pid, httpStatus(port: httpPort, path: "/dicom-web/studies") == 200, systemName(port: httpPort) == name {
                return (process, pid)
            }
            usleep(20_000)
        }
        process.terminate()
        process.waitUntilExit()
        let tail = (try? String(contentsOfFile: logPath, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
        throw Failure.startFailed("not ready on port \(httpPort) within \(timeout): \(tail)")
    }

    /// Freezes Orthanc (SIGSTOP): the kernel still accepts connections, nothing is answered.
    public func suspend() { signalOrthanc(SIGSTOP) }

    /// Continues a suspended Orthanc (SIGCONT).
    public func resume() { signalOrthanc(SIGCONT) }

    /// SIGKILLs Orthanc (a PACS outage); ``restart()`` brings it back on the same ports and storage.
    public func kill() {
        let current = running.withLock { state -> (guardProcess: Process, pid: Int32)? in
            defer { state = nil }
            return state
        }
        guard let current else { return }
        Glibc.kill(current.pid, SIGKILL)
        current.guardProcess.waitUntilExit()  // the guard notices within 0.2 s
    }

    /// Starts Orthanc again after ``kill()`` on the same ports with the same storage.
    public func restart(timeout: Duration = .seconds(15)) throws {
        kill()
        let started = try Self.launch(directory: directory, httpPort: httpPort, name: name, timeout: timeout)
        running.withLock { $0 = started }
    }

    /// Kills Orthanc and removes its directory. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let current = running.withLock { state -> (guardProcess: Process, pid: Int32)? in
            defer { state = nil }
            return state
        }
        if let current {
            Glibc.kill(current.pid, SIGCONT)  // a stopped child still dies of SIGKILL, but be tidy
            current.guardProcess.terminate()
            current.guardProcess.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func signalOrthanc(_ signal: Int32) {
        if let pid = running.withLock({ $0?.pid }) { Glibc.kill(pid, signal) }
    }

    /// Stores a Part-10 file through Orthanc's own REST API (`POST /instances`; test set-up only,
    /// the client under test never uses it). Throws unless Orthanc answers 200.
    public func upload(_ bytes: [UInt8]) throws {
        guard let (status, body) = Self.exchange(
            port: httpPort, head: "POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/dicom\r\n", body: bytes)
        else { throw Failure.requestFailed("POST /instances: no answer") }
        guard status == 200 else {
            throw Failure.requestFailed("POST /instances: HTTP \(status): \(String(decoding: body.prefix(500), as: UTF8.self))")
        }
    }

    /// The number of stored instances (`GET /statistics`, CountInstances); nil if Orthanc does not answer.
    public var instanceCount: Int? {
        guard let (status, body) = Self.exchange(port: httpPort, head: "GET /statistics HTTP/1.1\r\nHost: 127.0.0.1\r\n", body: []),
              status == 200,
              let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        return (object["CountInstances"] as? NSNumber)?.intValue
    }

    /// The `Name` of the Orthanc answering on `port` (`GET /system`).
    private static func systemName(port: Int) -> String? {
        guard let (status, body) = exchange(port: port, head: "GET /system HTTP/1.1\r\nHost: 127.0.0.1\r\n", body: [],
                                            timeoutSeconds: 1),
              status == 200,
              let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        return object["Name"] as? String
    }

    private static func httpStatus(port: Int, path: String) -> Int? {
        exchange(port: port, head: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n", body: [], timeoutSeconds: 1)?.status
    }

    /// One HTTP/1.1 exchange with `Connection: close` on a raw socket; reads until the server
    /// closes or `timeoutSeconds` pass without data. Nil when nothing answers.
    static func exchange(port: Int, head: String, body: [UInt8], timeoutSeconds: Int = 10) -> (status: Int, body: [UInt8])? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array((head + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n").utf8) + body
        var offset = 0
        while offset < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return nil }
            offset += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let separator = Array("\r\n\r\n".utf8)
        guard response.count > 12, response.starts(with: "HTTP/1.".utf8),
              let status = Int(String(decoding: response[9..<12], as: UTF8.self)) else { return nil }
        var split = response.count
        for i in 0...(response.count - 4) where response[i..<(i + 4)].elementsEqual(separator) {
            split = i + 4
            break
        }
        return (status, Array(response[min(split, response.count)...]))
    }
}
