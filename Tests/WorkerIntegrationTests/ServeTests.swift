import Foundation
import SegIO
import SegKafka
import SegModel
import SegTesting
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

    /// The support-set store is down (nothing listens at its HTTP address): a valid request gets an
    /// error result and a dead letter with the code `internal` and a reason naming the store, its
    /// offset is committed (a replay of the dead-letter topic reprocesses it once the store is back),
    /// and the worker keeps running.
    @Test(.timeLimit(.minutes(3)))
    func anUnreachableStoreGivesInternalDeadLettersAndTheWorkerKeepsRunning() async throws {
        let (broker, dir) = try await startBrokerAndStore()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let (query, _) = Self.pair(seed: 1)
        let q64 = Data(try PNGCodec.encodeGray8(query, width: 24, height: 24)).base64EncodedString()
        let ids = ["down-1", "down-2"]
        try await WorkerHarness.send(ids.map {
            .init(key: $0, value: #"{"request_id":"\#($0)","support_set":{"id":"blobs"},"image":{"png_base64":"\#(q64)"}}"#)
        }, bootstrap: bootstrap)
        let port = try LoopbackHTTP.freePort()
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: "store-down",
                                                   store: "http://127.0.0.1:\(port)/sets")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }

        let (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: ids.count,
                                                                                 deadLetters: ids.count)
        #expect(results.count == ids.count, "results: \(results.count)\n\(worker.log.suffix(2000))")
        #expect(dead.count == ids.count, "dead letters: \(dead.count)")
        var seen: [String] = []
        for m in results {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any])
            seen.append(try #require(json["request_id"] as? String))
            #expect(json["status"] as? String == "error")
            let error = try #require(json["error"] as? [String: Any])
            #expect(error["code"] as? String == "internal")
            let reason = try #require(error["reason"] as? String)
            #expect(reason.contains("the store could not be reached"), "reason: \(reason)")
        }
        #expect(Set(seen) == Set(ids))
        for d in dead {
            #expect(d.header("universeg.error.code").map { String(decoding: $0, as: UTF8.self) } == "internal")
            // The dead letter carries the original request, so a replay can reprocess it.
            #expect(ids.contains { id in String(decoding: d.value ?? [], as: UTF8.self).contains(#""request_id":"\#(id)""#) })
        }
        #expect(process.isRunning, "the worker must survive a store outage:\n\(worker.log.suffix(2000))")

        process.terminate()
        let exited = try await blocking { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(exited == 0, "\(worker.log.suffix(2000))")
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "store-down", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committed == ids.count, "committed offsets should cover the \(ids.count) requests")
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
