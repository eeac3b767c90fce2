import Foundation
import SegIO
import SegKafka
import SegModel
import SegOperations
import SegTesting
import Synchronization
import Testing

/// `universeg-worker serve` against a real Tansu broker, run as a separate process.
@Suite(.serialized, .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"))
struct ServeTests {
    /// A store with support set "blobs" (version 1, LATEST 1), small random weights and a config file.
    func prepare(_ dir: TemporaryDirectory, brokers: String) throws {
        var entries: [String] = []
        for i in 0..<4 {
            let (image, label) = Self.pair(seed: i)
            try dir.write("store/blobs/1/images/\(i).png", try PNGCodec.encodeGray8(image, width: 24, height: 24))
            try dir.write("store/blobs/1/labels/\(i).png", try PNGCodec.encodeGray8(label, width: 24, height: 24))
            entries.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
        }
        try dir.write("store/blobs/1/support.json", Array(#"{"entries":[\#(entries.joined(separator: ","))]}"#.utf8))
        try dir.write("store/blobs/LATEST", Array("1".utf8))
        try WorkerHarness.writeWeightsAndConfig(dir)
    }

    /// A Tansu broker with the four topics, and a test directory made by `prepare`. The caller
    /// stops the broker.
    func startBrokerAndStore() async throws -> (broker: TansuBroker, dir: TemporaryDirectory) {
        let broker = try await TansuBroker.start()
        do {
            let dir = try TemporaryDirectory()
            try prepare(dir, brokers: broker.bootstrapServers)
            try await WorkerHarness.createTopics(broker.bootstrapServers)
            return (broker, dir)
        } catch {
            broker.stop()
            throw error
        }
    }

    static func pair(seed: Int) -> ([UInt8], [UInt8]) {
        var image = [UInt8](repeating: 180, count: 576), label = [UInt8](repeating: 0, count: 576)
        let c = 8 + seed % 5
        for y in 0..<24 { for x in 0..<24 where abs(x - c) + abs(y - c) < 6 { image[y * 24 + x] = 60; label[y * 24 + x] = 255 } }
        return (image, label)
    }

    @Test(.timeLimit(.minutes(3)))
    func requestsBecomeResultsErrorsBecomeDeadLettersAndOffsetsAreCommitted() async throws {
        let (broker, dir) = try await startBrokerAndStore()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        // Three requests: a valid one with ground truth, malformed JSON, an unknown support set.
        let (query, truth) = Self.pair(seed: 2)
        let q64 = Data(try PNGCodec.encodeGray8(query, width: 24, height: 24)).base64EncodedString()
        let t64 = Data(try PNGCodec.encodeGray8(truth, width: 24, height: 24)).base64EncodedString()
        let trace = [("traceparent", Array("00-abc-01".utf8))]
        let requests: [WorkerHarness.Request] = [
            .init(key: "ok-1", value: #"{"request_id":"ok-1","support_set":{"id":"blobs"},"image":{"png_base64":"\#(q64)"},"ground_truth":{"png_base64":"\#(t64)"}}"#, headers: trace),
            .init(key: "bad-json", value: #"{"request_id": "bad-json", "#, headers: trace),
            .init(key: "missing-set", value: #"{"request_id":"missing-set","support_set":{"id":"nope"},"image":{"png_base64":"\#(q64)"}}"#, headers: trace),
        ]
        try await WorkerHarness.send(requests, bootstrap: bootstrap)
        // The worker.
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "serve-test")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }

        // Results and dead letters.
        let (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 2, deadLetters: 2)
        #expect(results.count == 2, "results: \(results.count)")
        #expect(dead.count == 2, "dead letters: \(dead.count)")
        var byID: [String: [String: Any]] = [:]
        for m in results {
            if let json = try? JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any],
               let id = json["request_id"] as? String { byID[id] = json }
            #expect(m.header("traceparent").map { String(decoding: $0, as: UTF8.self) } == "00-abc-01")
        }
        let ok = try #require(byID["ok-1"])
        #expect(ok["status"] as? String == "ok")
        let mask = try #require(ok["mask"] as? [String: Any])
        #expect(mask["width"] as? Int == 24 && mask["height"] as? Int == 24)
        #expect(ok["dice"] is Double)
        let missing = try #require(byID["missing-set"])
        #expect((missing["error"] as? [String: Any])?["code"] as? String == "support_set_not_found")
        let codes = Set(dead.compactMap { $0.header("universeg.error.code").map { String(decoding: $0, as: UTF8.self) } })
        #expect(codes == ["invalid_json", "support_set_not_found"])
        for d in dead {
            // The dead letter carries the original bytes and headers.
            #expect(requests.contains { Array($0.value.utf8) == d.value ?? [] })
            #expect(d.header("traceparent") != nil && d.header("universeg.source.offset") != nil)
        }

        // SIGTERM: drained, committed, exit 0.
        process.terminate()
        let exited = try await blocking { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        let stderr = worker.log
        #expect(exited == 0, "\(stderr)")
        #expect(!stderr.contains(q64.prefix(32)), "image data must not be logged")
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "serve-test", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committed == 3, "committed offsets should cover the 3 requests")
    }

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set(_ on: Bool) { value.store(on, ordering: .relaxed) }
    }

    /// Serves `dir/store` over HTTP on `port` (as nginx would serve a static tree); while `failing`
    /// is set it answers 503 instead.
    static func serveStore(_ dir: TemporaryDirectory, port: Int, failing: Flag? = nil) throws -> HTTPEndpoint {
        let root = dir.path + "/store"
        let endpoint = try HTTPEndpoint(address: "127.0.0.1:\(port)") { path in
            if failing?.isSet == true { return .init(status: 503, body: "unavailable") }
            let relative = path.hasPrefix("/sets/") ? String(path.dropFirst(6)) : ""
            guard !relative.isEmpty, !relative.contains(".."), let data = FileManager.default.contents(atPath: root + "/" + relative) else {
                return .init(status: 404, body: "not found")
            }
            return .init(status: 200, contentType: "application/octet-stream", bytes: [UInt8](data))
        }
        endpoint.start()
        return endpoint
    }

    /// A stop while the broker does not answer (SIGSTOP): a request fetched before, answered after,
    /// has a result that cannot be delivered by the producer's flush deadline. The worker exits 75
    /// ("stopped with work not acknowledged"), which the units count as a clean stop
    /// (SuccessExitStatus=75), instead of a failure; the request's offset stays uncommitted.
    @Test(.timeLimit(.minutes(4)))
    func aStopWithUndeliverableResultsExits75() async throws {
        let (broker, dir) = try await startBrokerAndStore()
        defer { broker.resume(); broker.stop() }
        let bootstrap = broker.bootstrapServers
        let (query, _) = Self.pair(seed: 3)
        let q64 = Data(try PNGCodec.encodeGray8(query, width: 24, height: 24)).base64EncodedString()
        // The store fails first, so that the request is fetched but not answered.
        let port = try LoopbackHTTP.freePort()
        let failing = Flag()
        failing.set(true)
        let server = try Self.serveStore(dir, port: port, failing: failing)
        defer { server.stop() }
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "stop-unacknowledged",
                                                   environment: ["UNIVERSEG_INFERENCE_DRAIN_TIMEOUT_S": "2"],
                                                   store: "http://127.0.0.1:\(port)/sets")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }
        try await WorkerHarness.send([.init(key: "late-1", value: #"{"request_id":"late-1","support_set":{"id":"blobs"},"image":{"png_base64":"\#(q64)"}}"#)],
                                     bootstrap: bootstrap)
        let fetched = ContinuousClock.now + .seconds(90)
        while !worker.log.contains("dependency down") && ContinuousClock.now < fetched && process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(worker.log.contains("dependency down"), "\(worker.log.suffix(2000))")

        // The broker stops answering; the store comes back; the result has nowhere to go.
        broker.suspend()
        failing.set(false)
        try await Task.sleep(for: .seconds(4))
        let start = ContinuousClock.now
        process.terminate()
        let exited = try await blocking { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        let took = ContinuousClock.now - start
        print("stop with the broker suspended: exit \(exited) after \(took)")
        #expect(exited == 75, "\(worker.log.suffix(3000))")
        #expect(worker.log.contains("stopped with work not acknowledged"), "\(worker.log.suffix(3000))")
        broker.resume()
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "stop-unacknowledged", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committed == 0, "the unacknowledged request's offset must not be committed")
    }

    /// An HTTP-store outage in the middle of a stream of requests: first the store is gone (nothing
    /// listens), then it answers 503, then it is back. Requests sent during the outage wait: no
    /// result, no dead letter, no committed offset; the worker logs the outage once and keeps
    /// running; when the store is back every request is answered `ok`, none is dead-lettered and
    /// the committed offsets cover all of them.
    @Test(.timeLimit(.minutes(4)))
    func anHTTPStoreOutageDelaysRequestsAndLosesNone() async throws {
        let (broker, dir) = try await startBrokerAndStore()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let (query, _) = Self.pair(seed: 1)
        let q64 = Data(try PNGCodec.encodeGray8(query, width: 24, height: 24)).base64EncodedString()
        func requests(_ ids: [String]) -> [WorkerHarness.Request] {
            ids.map { .init(key: $0, value: #"{"request_id":"\#($0)","support_set":{"id":"blobs"},"image":{"png_base64":"\#(q64)"}}"#) }
        }
        let port = try LoopbackHTTP.freePort()
        let failing = Flag()
        var server: HTTPEndpoint? = try Self.serveStore(dir, port: port, failing: failing)
        defer { server?.stop() }
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "store-outage",
                                                   store: "http://127.0.0.1:\(port)/sets")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }

        // Before the outage.
        let before = ["before-1", "before-2"]
        try await WorkerHarness.send(requests(before), bootstrap: bootstrap)
        var (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 2, deadLetters: 0)
        #expect(results.count == 2, "\(worker.log.suffix(2000))")

        // The store goes away: connection refused, then HTTP 503.
        server?.stop()
        server = nil
        let during = (1...4).map { "during-\($0)" }
        try await WorkerHarness.send(requests(during), bootstrap: bootstrap)
        try await Task.sleep(for: .seconds(3))
        failing.set(true)
        server = try Self.serveStore(dir, port: port, failing: failing)
        try await Task.sleep(for: .seconds(3))
        (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 3, deadLetters: 1, seconds: 10)
        #expect(results.count == 2 && dead.isEmpty, "nothing may be answered while the store is down: \(results.count) results, \(dead.count) dead letters\n\(worker.log.suffix(3000))")
        #expect(process.isRunning, "\(worker.log.suffix(2000))")
        let committedDuring = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "store-outage", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committedDuring <= before.count, "offsets of waiting requests must not be committed (\(committedDuring))")
        #expect(worker.log.components(separatedBy: "dependency down").count == 2, "one line when the store goes down:\n\(worker.log.suffix(3000))")

        // The store is back.
        failing.set(false)
        (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 6, deadLetters: 0,
                                                                             seconds: 90, linger: 2)
        #expect(dead.isEmpty, "dead letters: \(dead.count)")
        var statuses: [String: String] = [:]
        for m in results {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any])
            statuses[try #require(json["request_id"] as? String)] = json["status"] as? String
        }
        #expect(statuses == Dictionary(uniqueKeysWithValues: (before + during).map { ($0, "ok") }), "\(statuses)\n\(worker.log.suffix(3000))")
        #expect(worker.log.contains("dependency back"), "\(worker.log.suffix(3000))")

        process.terminate()
        let exited = try await blocking { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(exited == 0, "\(worker.log.suffix(2000))")
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "store-outage", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committed == before.count + during.count, "committed offsets should cover every request")
    }

    /// SIGKILL while requests are in flight: after a restart every request has a result (some
    /// possibly twice, from redelivery), none is lost, and duplicates carry identical masks.
    @Test(.timeLimit(.minutes(3)))
    func requestsInFlightAtSigkillAreProcessedAgainAfterRestart() async throws {
        let (broker, dir) = try await startBrokerAndStore()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        // Large query images (2500x2500) make each request take a noticeable time (resizing,
        // mask encoding), so several are in flight or queued when the worker is killed.
        var big = [UInt8](repeating: 170, count: 2500 * 2500)
        for y in 800..<1500 { for x in 800..<1500 { big[y * 2500 + x] = 50 } }
        let b64 = Data(try PNGCodec.encodeGray8(big, width: 2500, height: 2500)).base64EncodedString()
        let ids = (0..<8).map { "kill-\($0)" }
        try await WorkerHarness.send(ids.map {
            .init(key: $0, value: #"{"request_id":"\#($0)","support_set":{"id":"blobs"},"image":{"png_base64":"\#(b64)"}}"#)
        }, bootstrap: bootstrap, flushSeconds: 20)
        let first = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "kill-test").process
        defer { if first.isRunning { first.terminate() } }
        let reader = try await blocking { () -> KafkaConsumer in
            var config = KafkaConfiguration(bootstrapServers: [bootstrap])
            config["group.id"] = "reader-" + UUID().uuidString
            config["auto.offset.reset"] = "earliest"
            config["session.timeout.ms"] = "6000"
            let c = try KafkaConsumer(configuration: config)
            try c.subscribe(topics: ["universeg.results"])
            return c
        }
        func read(until done: @escaping @Sendable ([String: [String]]) -> Bool, seconds: Double) async throws -> [String: [String]] {
            try await blocking {
                var masks: [String: [String]] = [:]
                let deadline = Date().addingTimeInterval(seconds)
                while !done(masks) && Date() < deadline {
                    guard let m = reader.poll(timeout: .milliseconds(100)), m.error == nil,
                          let json = try? JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any],
                          let id = json["request_id"] as? String, json["status"] as? String == "ok",
                          let mask = (json["mask"] as? [String: Any])?["png_base64"] as? String else { continue }
                    masks[id, default: []].append(mask)
                }
                return masks
            }
        }
        // Kill as soon as the first result is out.
        var seen = try await read(until: { !$0.isEmpty }, seconds: 60)
        kill(first.processIdentifier, SIGKILL)
        _ = try await blocking { first.waitUntilExit() }
        #expect(!seen.isEmpty)
        #expect(seen.count < ids.count, "the kill should land while requests are still pending")
        // Restart: every request gets a result.
        let restarted = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "kill-test")
        let second = restarted.process
        defer { if second.isRunning { second.terminate() } }
        let missing = Set(ids).subtracting(seen.keys)
        let rest = try await read(until: { masks in missing.isSubset(of: masks.keys) }, seconds: 90)
        for (id, masks) in rest { seen[id, default: []] += masks }
        #expect(Set(seen.keys) == Set(ids), "lost: \(Set(ids).subtracting(seen.keys).sorted())")
        for (id, masks) in seen where masks.count > 1 {
            #expect(Set(masks).count == 1, "duplicate results of \(id) differ")
        }
        second.terminate()
        let status = try await blocking { () -> Int32 in second.waitUntilExit(); return second.terminationStatus }
        #expect(status == 0, "\(restarted.log)")
        try await blocking { try reader.close() }
    }
}
