import Foundation
import SegIO
import SegKafka
import SegModel
import SegTesting
import Testing

/// At least once, at the exact moment that matters: the worker has finished inference and
/// handed its result to the producer, but the broker has not acknowledged it, when the worker is
/// killed. The offset must not be committed, and after a restart the request is processed again.
@Suite(.serialized, .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"))
struct AtLeastOnceTests {
    typealias Ops = OperationsIntegrationTests

    @Test(.timeLimit(.minutes(4)))
    func workerKilledAfterInferenceBeforeAcknowledgementReprocessesTheRequest() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.resume(); broker.stop() }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try Ops.writeStore(dir, entries: 8)
        try WorkerHarness.writeWeightsAndConfig(dir, inference: "")  // small weights, short Kafka timeouts
        try await WorkerHarness.createTopics(bootstrap, requestPartitions: 1)
        let port = try Ops.freePort()
        // The test-only gate holds the computed result until the test creates its file: the request
        // stays in flight for as long as the test needs, on any machine, however busy.
        let gate = dir.path + "/inference-gate"
        let first = try Ops.startServe(dir, bootstrap: bootstrap, group: "ack", metricsPort: port,
                                       environment: ["UNIVERSEG_TEST_INFERENCE_GATE": gate])
        defer { if first.process.isRunning { kill(first.process.processIdentifier, SIGKILL) } }
        try await waitUntil(seconds: 90) { Ops.get(port: port, "/readyz")?.status == 200 }

        try await Ops.produce(bootstrap, [("ack-1", try Ops.request(id: "ack-1", seed: 2, options: #"{"support_size":8}"#))])
        // The request is taken (in flight) and held at the gate -> freeze the broker, open the gate.
        try await waitUntil(seconds: 90, "the request in flight", log: { first.log }) {
            Ops.get(port: port, "/metrics")?.body.contains("universeg_in_flight_requests 1") ?? false
        }
        broker.suspend()
        try dir.write("inference-gate", [])
        // Inference finishes and the result is handed to the producer: it cannot be acknowledged.
        try await waitUntil(seconds: 60, "the first worker's result", log: { first.log }) { first.log.contains("request ok") }
        try await Task.sleep(for: .seconds(1))
        #expect(!first.log.contains("stopped"))
        kill(first.process.processIdentifier, SIGKILL)
        _ = try await blocking { first.process.waitUntilExit() }
        broker.resume()

        // Nothing was committed for the request.
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "ack", partitions: 1)
        #expect((committed[0] ?? -1) < 1, "offset committed without an acknowledged result: \(committed)")

        // After a restart the request is processed again and committed.
        let second = try Ops.startServe(dir, bootstrap: bootstrap, group: "ack", metricsPort: try Ops.freePort())
        defer { if second.process.isRunning { second.process.terminate() } }
        try await waitUntil(seconds: 120) { second.log.contains("request ok") && second.log.contains("request_id=ack-1") }
        let results = try await Ops.read(bootstrap, topics: ["universeg.results"], seconds: 20) { $0.count >= 1 }
        #expect(!results.isEmpty)
        let masks = Set(results.compactMap { (Ops.json($0)["mask"] as? [String: Any])?["png_base64"] as? String })
        #expect(masks.count == 1, "a duplicate (the first worker's record, if the broker took it after all) has the same mask")
        #expect(try await Ops.terminate(second) == 0, "\(second.log)")
        let after = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "ack", partitions: 1)
        #expect(after[0] == 1, "\(after)")
    }

    func waitUntil(seconds: Double, _ what: String = "", log: @escaping @Sendable () -> String = { "" },
                   _ condition: @escaping @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("\(what): not within \(seconds) s\n\(log().suffix(3000))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
