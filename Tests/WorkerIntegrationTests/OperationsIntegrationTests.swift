import Foundation
import SegIO
import SegKafka
import SegModel
import SegTesting
import Synchronization
import Testing

/// The operator's view of `serve` (systemd notify socket, watchdog, Prometheus endpoint, metrics
/// topic) and the `enqueue` and `replay` commands, against a real Tansu broker.
@Suite(.serialized, .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"))
struct OperationsIntegrationTests {
    // MARK: - Helpers

    /// Collects sd_notify datagrams (with arrival times) on a socket the test binds, as systemd does.
    final class NotifyCollector: @unchecked Sendable {
        let listener: DatagramListener
        private let messages = Mutex<[(at: ContinuousClock.Instant, text: String)]>([])
        private let stopped = Atomic<Bool>(false)

        init(path: String) throws {
            listener = try DatagramListener(path: path, timeoutMilliseconds: 100)
            let thread = Thread { [self] in
                while !stopped.load(ordering: .relaxed) {
                    if let bytes = listener.receive() {
                        let text = String(decoding: bytes, as: UTF8.self)
                        messages.withLock { $0.append((.now, text)) }
                    }
                }
            }
            thread.start()
        }

        var all: [(at: ContinuousClock.Instant, text: String)] { messages.withLock { $0 } }

        /// Every assignment in order ("READY=1", "STATUS=...", ...), multi-line messages split.
        var assignments: [String] { all.flatMap { $0.text.split(separator: "\n").map(String.init) } }

        func wait(for assignment: String, seconds: Double) async throws -> Bool {
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            while ContinuousClock.now < deadline {
                if assignments.contains(assignment) { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }

        func stop() { stopped.store(true, ordering: .relaxed) }
    }

    /// A store `dir/store` with support set "blobs" (version 1 = LATEST) of `entries` pairs.
    static func writeStore(_ dir: TemporaryDirectory, entries count: Int) throws {
        var entries: [String] = []
        for i in 0..<count {
            let (image, label) = ServeTests.pair(seed: i)
            try dir.write("store/blobs/1/images/\(i).png", try PNGCodec.encodeGray8(image, width: 24, height: 24))
            try dir.write("store/blobs/1/labels/\(i).png", try PNGCodec.encodeGray8(label, width: 24, height: 24))
            entries.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
        }
        try dir.write("store/blobs/1/support.json", Array(#"{"entries":[\#(entries.joined(separator: ","))]}"#.utf8))
        try dir.write("store/blobs/LATEST", Array("1".utf8))
    }

    static func freePort() throws -> Int { try LoopbackHTTP.freePort() }

    static func get(port: Int, _ path: String) -> (status: Int, body: String)? { LoopbackHTTP.get(port: port, path) }

    /// `serve` with its Prometheus endpoint on `metricsPort`.
    static func startServe(_ dir: TemporaryDirectory, bootstrap: String, group: String, metricsPort: Int,
                           environment: [String: String] = [:]) throws -> WorkerHarness.Worker {
        try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: group,
                                      arguments: ["--metrics-address", "127.0.0.1:\(metricsPort)"], environment: environment)
    }

    /// `serve` as systemd runs it: a notify socket (bound by the test) and a watchdog interval.
    static func startNotified(_ dir: TemporaryDirectory, bootstrap: String, group: String, watchdogMicroseconds: Int,
                              environment: [String: String] = [:])
        throws -> (NotifyCollector, WorkerHarness.Worker, port: Int) {
        let notify = try NotifyCollector(path: dir.path + "/notify.sock")
        let port = try freePort()
        let worker = try startServe(dir, bootstrap: bootstrap, group: group, metricsPort: port, environment: [
            "NOTIFY_SOCKET": notify.listener.path, "WATCHDOG_USEC": String(watchdogMicroseconds)].merging(environment) { _, new in new })
        return (notify, worker, port)
    }

    /// Runs a `universeg-worker` command to completion: (exit status, stdout, stderr).
    static func runCommand(_ arguments: [String]) async throws -> (Int32, String, String) {
        let r = try await blocking { try runToCompletion(WorkerHarness.executable, arguments) }
        return (r.status, r.stdout, r.stderr)
    }

    /// Reads `topics` from the beginning until `done` or the deadline.
    static func read(_ bootstrap: String, topics: [String], seconds: Double,
                     until done: @escaping @Sendable ([KafkaMessage]) -> Bool) async throws -> [KafkaMessage] {
        try await blocking {
            var config = KafkaConfiguration(bootstrapServers: [bootstrap])
            config["group.id"] = "reader-" + UUID().uuidString
            config["auto.offset.reset"] = "earliest"
            config["session.timeout.ms"] = "6000"
            let reader = try KafkaConsumer(configuration: config)
            try reader.subscribe(topics: topics)
            var messages: [KafkaMessage] = []
            let deadline = Date().addingTimeInterval(seconds)
            while !done(messages) && Date() < deadline {
                if let m = reader.poll(timeout: .milliseconds(100)), m.error == nil { messages.append(m) }
            }
            try reader.close()
            return messages
        }
    }

    static func json(_ m: KafkaMessage) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(m.value ?? []))) as? [String: Any] ?? [:]
    }

    static func request(id: String, seed: Int, options: String = "", truth: Bool = false) throws -> String {
        let (query, label) = ServeTests.pair(seed: seed)
        let q64 = Data(try PNGCodec.encodeGray8(query, width: 24, height: 24)).base64EncodedString()
        let t64 = Data(try PNGCodec.encodeGray8(label, width: 24, height: 24)).base64EncodedString()
        return #"{"request_id":"\#(id)","support_set":{"id":"blobs"},"image":{"png_base64":"\#(q64)"}"#
            + (truth ? #","ground_truth":{"png_base64":"\#(t64)"}"# : "")
            + (options.isEmpty ? "" : #","options":\#(options)"#) + "}"
    }

    static func produce(_ bootstrap: String, _ values: [(String, String)]) async throws {
        try await blocking {
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: [bootstrap]))
            for (key, value) in values {
                try producer.send(topic: "universeg.requests", key: Array(key.utf8), value: Array(value.utf8)) { _ in }
            }
            try producer.flush(timeout: .seconds(10))
            try producer.close()
        }
    }

    static func terminate(_ worker: WorkerHarness.Worker) async throws -> Int32 {
        worker.process.terminate()
        return try await blocking { () -> Int32 in
            worker.process.waitUntilExit()
            return worker.process.terminationStatus
        }
    }

    // MARK: - Tests

    /// READY=1 only after warm-up and subscription, WATCHDOG=1 pings after it, STATUS lines with
    /// the counters, STOPPING=1 at SIGTERM; /readyz, /healthz and /metrics answer; a request
    /// shows up in the metrics and as a record on the metrics topic.
    /// No broker at start (nothing listens at the bootstrap address): the worker starts anyway,
    /// says once that every broker is unreachable, /readyz answers 503 and STATUS= says so;
    /// librdkafka's own messages come through the worker's log format (no raw `%3|...` lines).
    /// When a broker comes up at that address, a request is answered, the log marks the brokers'
    /// return and /readyz is 200 again.
    @Test(.timeLimit(.minutes(4)))
    func brokersDownAtStartAreReportedAndTheWorkerServesOnceTheyAreBack() async throws {
        let dir = try TemporaryDirectory()
        try Self.writeStore(dir, entries: 4)
        try WorkerHarness.writeWeightsAndConfig(dir)
        // Unbound until the broker starts: a port no other test's free-port request can get.
        let brokerPort = try LoopbackHTTP.portOutsideEphemeralRange()
        let bootstrap = "127.0.0.1:\(brokerPort)"
        let (notify, worker, port) = try Self.startNotified(dir, bootstrap: bootstrap, group: "late-broker", watchdogMicroseconds: 400_000)
        defer { notify.stop() }
        defer { if worker.process.isRunning { worker.process.terminate() } }
        #expect(try await notify.wait(for: "READY=1", seconds: 60), "start-up must not wait for Kafka: \(worker.log)")
        let deadline = ContinuousClock.now + .seconds(60)
        while !worker.log.contains("all Kafka brokers unreachable") && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(worker.log.components(separatedBy: "all Kafka brokers unreachable").count == 2, "said once: \(worker.log.suffix(3000))")
        #expect(Self.get(port: port, "/readyz")?.status == 503)
        let statusDeadline = ContinuousClock.now + .seconds(30)
        while !notify.assignments.contains(where: { $0.hasPrefix("STATUS=Kafka brokers unreachable") }) && ContinuousClock.now < statusDeadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(notify.assignments.contains { $0.hasPrefix("STATUS=Kafka brokers unreachable") }, "\(notify.assignments.suffix(5))")
        #expect(worker.process.isRunning)
        #expect(!worker.log.contains("%3|") && !worker.log.contains("%4|"), "raw librdkafka lines: \(worker.log.suffix(3000))")
        #expect(worker.log.contains("kafka_facility="), "\(worker.log.suffix(3000))")

        let broker = try await TansuBroker.start(port: brokerPort)
        defer { broker.stop() }
        try await WorkerHarness.createTopics(bootstrap)
        try await Self.produce(bootstrap, [("late-1", try Self.request(id: "late-1", seed: 1))])
        let results = try await Self.read(bootstrap, topics: ["universeg.results"], seconds: 120) { $0.count >= 1 }
        #expect(results.count == 1, "\(worker.log.suffix(3000))")
        #expect(results.first.map { Self.json($0)["status"] as? String } == "ok")
        #expect(worker.log.contains("Kafka brokers reachable again"), "\(worker.log.suffix(3000))")
        #expect(Self.get(port: port, "/readyz")?.status == 200)
        #expect(try await Self.terminate(worker) == 0, "\(worker.log.suffix(2000))")
    }

    @Test(.timeLimit(.minutes(3)))
    func notifySocketProbesAndMetricsFollowTheWorkersLife() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try Self.writeStore(dir, entries: 4)
        try WorkerHarness.writeWeightsAndConfig(dir, inference: "")
        try dir.write("config.json", Array("""
            {"kafka": {"properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}},
             "metrics": {"interval_s": 1}}
            """.utf8))
        try await WorkerHarness.createTopics(bootstrap)
        let (notify, worker, port) = try Self.startNotified(dir, bootstrap: bootstrap, group: "ops", watchdogMicroseconds: 400_000)
        defer { notify.stop() }
        defer { if worker.process.isRunning { worker.process.terminate() } }

        #expect(try await notify.wait(for: "READY=1", seconds: 60), "\(worker.log)")
        #expect(Self.get(port: port, "/readyz")?.status == 200)
        #expect(Self.get(port: port, "/healthz")?.status == 200)
        #expect(Self.get(port: port, "/nope")?.status == 404)
        let before = try #require(Self.get(port: port, "/metrics"))
        #expect(before.body.contains("universeg_ready 1"))
        #expect(before.body.contains("universeg_model_info{name="))

        try await Self.produce(bootstrap, [("m-1", try Self.request(id: "m-1", seed: 1, truth: true))])
        let records = try await Self.read(bootstrap, topics: ["universeg.results", "universeg.metrics"], seconds: 60) { ms in
            ms.contains { $0.topic == "universeg.results" } && ms.contains { Self.json($0)["type"] as? String == "request" }
        }
        let metricsRecord = try #require(records.first { Self.json($0)["type"] as? String == "request" })
        // Snapshots of every metric, each metrics.interval_s (1 s here).
        let snapshots = try await Self.read(bootstrap, topics: ["universeg.metrics"], seconds: 30) { ms in
            ms.contains { m in
                let j = Self.json(m)
                return j["type"] as? String == "snapshot"
                    && ((j["metrics"] as? [String: Any])?["universeg_requests_total"] as? [[String: Any]])?.contains {
                        ($0["value"] as? Double) == 1 } == true
            }
        }
        #expect(snapshots.contains { Self.json($0)["type"] as? String == "snapshot" }, "no metrics snapshot on the metrics topic")
        let m = Self.json(metricsRecord)
        #expect(m["request_id"] as? String == "m-1" && m["status"] as? String == "ok")
        #expect(m["dice"] is Double, "the metrics record carries the Dice score when ground truth was given")
        #expect(metricsRecord.keyString == "m-1")

        let after = try #require(Self.get(port: port, "/metrics")).body
        #expect(after.contains(#"universeg_requests_total{outcome="ok",code=""} 1"#), "\(after)")
        #expect(after.contains(#"universeg_request_stage_seconds_count{stage="inference"} 1"#))
        #expect(after.contains("universeg_support_cache_misses_total 1"))
        try await Task.sleep(for: .seconds(1))

        #expect(try await Self.terminate(worker) == 0, "\(worker.log)")
        #expect(try await notify.wait(for: "STOPPING=1", seconds: 5))
        let sequence = notify.assignments
        let ready = try #require(sequence.firstIndex(of: "READY=1"))
        let firstPing = try #require(sequence.firstIndex(of: "WATCHDOG=1"), "\(sequence)")
        let stopping = try #require(sequence.firstIndex(of: "STOPPING=1"))
        #expect(ready < firstPing && firstPing < stopping, "\(sequence)")
        #expect(sequence.contains { $0.hasPrefix("STATUS=") && $0.contains("processed 1") }, "\(sequence)")
        // Logs are single-line records with structured fields and no image data.
        #expect(worker.log.contains("request ok") && worker.log.contains("request_id=m-1"), "\(worker.log)")
    }

    /// SIGTERM at any moment of start-up (loading, warm-up, joining the group) ends the worker
    /// promptly: with exit 0 once the handler is installed, by the signal before that; never a
    /// worker that keeps running.
    @Test(.timeLimit(.minutes(3)))
    func sigtermDuringStartUpIsNeverLost() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let dir = try TemporaryDirectory()
        try Self.writeStore(dir, entries: 4)
        try WorkerHarness.writeWeightsAndConfig(dir, inference: "")
        try await WorkerHarness.createTopics(broker.bootstrapServers)
        for delay in [0.05, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5] {
            let worker = try WorkerHarness.startWorker(dir, bootstrap: broker.bootstrapServers, group: "startup")
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            worker.process.terminate()
            let ended = try await blocking { () -> Bool in
                let deadline = Date().addingTimeInterval(30)
                while worker.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                return !worker.process.isRunning
            }
            if !ended { kill(worker.process.processIdentifier, SIGKILL) }
            #expect(ended, "SIGTERM \(delay) s after start was lost: \(worker.log)")
            if ended {
                let byHandler = worker.process.terminationReason == .exit && worker.process.terminationStatus == 0
                let bySignal = worker.process.terminationReason == .uncaughtSignal && worker.process.terminationStatus == SIGTERM
                #expect(byHandler || bySignal, "\(worker.process.terminationReason) \(worker.process.terminationStatus): \(worker.log)")
            }
        }
    }

    /// A request that runs longer than max.poll.interval.ms (here 3 s) and longer than the stall
    /// timeout (1 s): the watchdog pings stop while the executor is stuck on it and /healthz
    /// fails, then both recover; the poll loop keeps the consumer in its group (no revocation)
    /// and the request is processed exactly once.
    @Test(.timeLimit(.minutes(4)))
    func longRequestPausesWatchdogPingsButKeepsTheGroupMembership() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try Self.writeStore(dir, entries: 8)
        // Long by construction, on any machine: the test-only hook UNIVERSEG_TEST_MIN_INFERENCE_MS
        // makes the inference take 4.5 s, past max.poll.interval.ms (3 s) and the stall timeout (1 s).
        try WorkerHarness.writeWeightsAndConfig(dir)
        try dir.write("config.json", Array("""
            {"kafka": {"properties": {"session.timeout.ms": "3000", "heartbeat.interval.ms": "300",
                                      "max.poll.interval.ms": "3000", "auto.commit.interval.ms": "200"}},
             "inference": {"stall_timeout_s": 1, "drain_timeout_s": 60}}
            """.utf8))
        try await WorkerHarness.createTopics(bootstrap)
        let (notify, worker, port) = try Self.startNotified(dir, bootstrap: bootstrap, group: "long", watchdogMicroseconds: 500_000,
                                                            environment: ["UNIVERSEG_TEST_MIN_INFERENCE_MS": "4500"])
        defer { notify.stop() }
        defer { if worker.process.isRunning { worker.process.terminate() } }
        #expect(try await notify.wait(for: "READY=1", seconds: 90), "\(worker.log)")

        try await Self.produce(bootstrap, [("long-1", try Self.request(id: "long-1", seed: 3, options: #"{"support_size":8}"#))])
        // Probe /healthz while waiting for the result.
        let probes = Mutex<[Int]>([])
        let probing = Task.detached {
            while !Task.isCancelled {
                if let status = Self.get(port: port, "/healthz")?.status { probes.withLock { $0.append(status) } }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        let results = try await Self.read(bootstrap, topics: ["universeg.results"], seconds: 150) { $0.count >= 1 }
        let resultAt = ContinuousClock.now
        try await Task.sleep(for: .seconds(2))  // pings resume
        probing.cancel()
        // A redelivery (after an eviction) would show up as a second result.
        let again = try await Self.read(bootstrap, topics: ["universeg.results"], seconds: 12) { $0.count >= 2 }

        let result = Self.json(try #require(results.first))
        #expect(result["status"] as? String == "ok")
        let inference = try #require((result["timings_ms"] as? [String: Any])?["inference"] as? Double)
        #expect(inference >= 4500, "the test hook makes the inference last 4.5 s (\(inference) ms)")
        #expect(again.count == 1, "processed exactly once")
        #expect(!worker.log.contains("partitions revoked"), "\(worker.log)")

        let pings = notify.all.filter { $0.text == "WATCHDOG=1" }.map(\.at)
        let gaps = zip(pings, pings.dropFirst()).map { $1 - $0 }
        let longest = gaps.max() ?? .zero
        // No ping from 1 s after the request started until it finished (pings every 250 ms otherwise).
        let expectedGap = Duration.milliseconds(Int(inference) - 1500)
        #expect(longest > expectedGap && longest > .seconds(1.5),
                "pings should stop while the executor is stalled (longest gap \(longest), inference \(inference) ms)")
        #expect(pings.contains { $0 > resultAt }, "pings resume after the request finished")
        #expect(probes.withLock { $0.contains(503) && $0.last == 200 }, "\(probes.withLock { $0 })")
        #expect(worker.log.contains("watchdog pings withheld"))
        #expect(try await Self.terminate(worker) == 0, "\(worker.log)")
    }

    /// `enqueue --wait` sends a directory of images with ground truth and writes the masks;
    /// `replay` with the same weights reprocesses them into another topic, marked as replays,
    /// with the original coordinates and byte-identical masks.
    @Test(.timeLimit(.minutes(4)))
    func enqueueWritesMasksAndReplayReproducesThem() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try Self.writeStore(dir, entries: 4)
        try WorkerHarness.writeWeightsAndConfig(dir, inference: "")
        try await WorkerHarness.createTopics(bootstrap)
        try await blocking {
            let admin = try KafkaAdminClient(configuration: KafkaConfiguration(bootstrapServers: [bootstrap]))
            try admin.createTopics([("universeg.replay", 1)])
        }
        for i in 0..<3 {
            let (image, label) = ServeTests.pair(seed: 10 + i)
            try dir.write("queries/q\(i).png", try PNGCodec.encodeGray8(image, width: 24, height: 24))
            try dir.write("truth/q\(i).png", try PNGCodec.encodeGray8(label, width: 24, height: 24))
        }
        let start = Int64(Date().timeIntervalSince1970 * 1000) - 1000
        let port = try Self.freePort()
        let worker = try Self.startServe(dir, bootstrap: bootstrap, group: "enq", metricsPort: port)
        defer { if worker.process.isRunning { worker.process.terminate() } }

        let (status, out, err) = try await Self.runCommand([
            "enqueue", "--brokers", bootstrap, "--support-set", "blobs@1", "--ground-truth", dir.path + "/truth",
            "--wait", "--timeout", "90", "--out", dir.path + "/masks", dir.path + "/queries"])
        #expect(status == 0, "\(out)\n\(err)\n\(worker.log)")
        let lines = out.split(separator: "\n")
        #expect(lines.filter { $0.contains("\tok\t") && $0.contains("dice ") }.count == 3, "\(out)")
        #expect(out.contains("results: 3 ok, 0 errors, 0 missing"))
        var masks: [String: [UInt8]] = [:]
        for i in 0..<3 {
            let bytes = try FileIO.read(dir.path + "/masks/q\(i).png", maxBytes: 1 << 20)
            let mask = try PNGCodec.decode(bytes)
            #expect(mask.width == 24 && mask.height == 24)
            masks["q\(i)"] = bytes
        }
        #expect(try await Self.terminate(worker) == 0)

        let (replayStatus, summary, replayErr) = try await Self.runCommand([
            "replay", "--from", String(start), "--results-topic", "universeg.replay", "--brokers", bootstrap,
            "--config", dir.path + "/config.json", "--store", "file://" + dir.path + "/store",
            "--weights", dir.path + "/w.safetensors"])
        #expect(replayStatus == 0, "\(summary)\n\(replayErr)")
        #expect(summary.contains("replayed 3 requests"), "\(summary)")
        let originals = try await Self.read(bootstrap, topics: ["universeg.results"], seconds: 20) { $0.count >= 3 }
        let replays = try await Self.read(bootstrap, topics: ["universeg.replay"], seconds: 20) { $0.count >= 3 }
        #expect(replays.count == 3)
        for replayed in replays {
            let r = Self.json(replayed)
            #expect(r["replay"] as? Bool == true)
            let id = try #require(r["request_id"] as? String)
            let original = Self.json(try #require(originals.first { Self.json($0)["request_id"] as? String == id }))
            #expect((r["source"] as? [String: AnyHashable]) == (original["source"] as? [String: AnyHashable]))
            let b64 = try #require((r["mask"] as? [String: Any])?["png_base64"] as? String)
            let file = try #require(id.split(separator: "-").last.map(String.init))
            #expect(Data(base64Encoded: b64).map { [UInt8]($0) } == masks[file], "replayed mask of \(id) differs")
        }
    }
}
