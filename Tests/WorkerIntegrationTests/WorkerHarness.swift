import Foundation
import SegIO
import SegKafka
import SegModel
import SegTesting

/// What the integration tests share: the `universeg-worker` executable, small random weights and
/// a config file in a test directory, the topics, and a `serve` process logging to a file.
enum WorkerHarness {
    static var executable: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return [dir, dir.deletingLastPathComponent()].map { $0.appendingPathComponent("universeg-worker").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "universeg-worker"
    }

    /// `dir/w.safetensors`: a small randomly initialized network (16 x 16 input), and
    /// `dir/config.json` with short Kafka timeouts and no metrics endpoint (workers of tests that
    /// run side by side would compete for its port); `inference` holds extra keys of that section,
    /// `kafka` librdkafka properties that replace or add to those defaults.
    static func writeWeightsAndConfig(_ dir: TemporaryDirectory, inference: String = "", kafka: [String: String] = [:]) throws {
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 3)
        try dir.write("w.safetensors", try SafeTensors.serialize(model.namedTensors, metadata: WeightsFile.metadata(for: cfg)))
        let properties = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "auto.commit.interval.ms": "200"]
            .merging(kafka) { _, new in new }
        let propertiesJSON = String(decoding: try JSONSerialization.data(withJSONObject: properties, options: [.sortedKeys]), as: UTF8.self)
        try dir.write("config.json", Array("""
            {"kafka": {"properties": \(propertiesJSON)},
             "inference": {"drain_timeout_s": 20\(inference.isEmpty ? "" : ", " + inference)},
             "metrics": {"address": "off"}}
            """.utf8))
    }

    /// A running `serve` process; its standard error goes to a file, so that a chatty worker never
    /// blocks on a full pipe.
    struct Worker {
        let process: Process
        let logPath: String

        /// Everything the worker wrote to standard error so far.
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    }

    /// Starts `serve` with `dir/config.json`, the store `store` (default `dir/store`) and the weights
    /// `dir/w.safetensors`, plus `arguments`, with `environment` added to the test's own.
    static func startWorker(_ dir: TemporaryDirectory, bootstrap: String, group: String, arguments: [String] = [],
                            environment: [String: String] = [:], store: String? = nil) throws -> Worker {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--config", dir.path + "/config.json", "--brokers", bootstrap, "--group", group,
                             "--store", store ?? "file://" + dir.path + "/store", "--weights", dir.path + "/w.safetensors"] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let logPath = dir.path + "/worker-\(UUID().uuidString.prefix(8)).log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil), let log = FileHandle(forWritingAtPath: logPath) else {
            throw CocoaError(.fileWriteUnknown)
        }
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        try log.close()
        return Worker(process: process, logPath: logPath)
    }

    /// The four topics; the requests topic has `requestPartitions` partitions.
    /// A broker that has only just started can leave the admin client waiting for its controller
    /// past the 30 s request timeout when the machine is loaded (seen once in a full CI run, at
    /// 47 s into a test): a timed-out attempt is repeated, twice at most, with a new client.
    /// Topics that an attempt did create are accepted by the next one (already exists).
    static func createTopics(_ bootstrap: String, requestPartitions: Int = 2) async throws {
        for attempt in 1...3 {
            do {
                try await blocking {
                    let admin = try KafkaAdminClient(configuration: KafkaConfiguration(bootstrapServers: [bootstrap]))
                    try admin.createTopics(["universeg.requests", "universeg.results", "universeg.metrics", "universeg.requests.dlq"]
                        .map { (name: $0, partitions: Int32($0 == "universeg.requests" ? requestPartitions : 1)) })
                }
                return
            } catch let error as KafkaError where error.code == .timedOut && attempt < 3 {
                continue
            }
        }
    }

    /// A request record as a test sends it.
    struct Request: Sendable {
        let key: String
        let value: String
        var headers: [(String, [UInt8])] = []
    }

    /// Sends `requests` to the requests topic, in order, and waits until the broker has them all.
    static func send(_ requests: [Request], bootstrap: String, flushSeconds: Int = 10) async throws {
        try await blocking {
            let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: [bootstrap]))
            for r in requests {
                try producer.send(topic: "universeg.requests", key: Array(r.key.utf8), value: Array(r.value.utf8),
                                  headers: r.headers) { _ in }
            }
            try producer.flush(timeout: .seconds(flushSeconds))
            try producer.close()
        }
    }

    /// Reads the results and dead-letter topics from their start, as a new group, until there are at
    /// least `results` result records and `deadLetters` dead letters, or `seconds` have passed; once
    /// there are, it reads `linger` seconds longer, to catch records that should not exist.
    static func readResultsAndDeadLetters(bootstrap: String, results wantedResults: Int, deadLetters wantedDead: Int,
                                          seconds: Double = 90, linger: Double = 0) async throws
        -> (results: [KafkaMessage], dead: [KafkaMessage]) {
        try await blocking { () -> ([KafkaMessage], [KafkaMessage]) in
            var config = KafkaConfiguration(bootstrapServers: [bootstrap])
            config["group.id"] = "reader-" + UUID().uuidString
            config["auto.offset.reset"] = "earliest"
            config["session.timeout.ms"] = "6000"
            let reader = try KafkaConsumer(configuration: config)
            defer { try? reader.close() }
            try reader.subscribe(topics: ["universeg.results", "universeg.requests.dlq"])
            var results: [KafkaMessage] = [], dead: [KafkaMessage] = []
            var deadline = Date().addingTimeInterval(seconds)
            var complete = false
            while Date() < deadline {
                if let m = reader.poll(timeout: .milliseconds(200)), m.error == nil {
                    if m.topic == "universeg.results" { results.append(m) } else { dead.append(m) }
                }
                if !complete && results.count >= wantedResults && dead.count >= wantedDead {
                    complete = true
                    deadline = min(deadline, Date().addingTimeInterval(linger))
                }
            }
            return (results, dead)
        }
    }

    /// Polls (up to `seconds`) until the group's committed offsets reach `end` (partition -> the
    /// offset after its last record); returns the committed offsets last seen.
    static func committedOffsets(bootstrap: String, group: String, reaching end: [Int32: Int64],
                                 seconds: Double = 30) async throws -> [Int32: Int64] {
        var committed: [Int32: Int64] = [:]
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            committed = try await committedOffsets(bootstrap: bootstrap, group: group, partitions: end.count)
            if end.allSatisfy({ committed[$0.key] == $0.value }) { break }
            try await Task.sleep(for: .milliseconds(300))
        }
        return committed
    }

    /// The group's committed offsets of the request partitions.
    static func committedOffsets(bootstrap: String, group: String, partitions: Int) async throws -> [Int32: Int64] {
        try await blocking {
            var config = KafkaConfiguration(bootstrapServers: [bootstrap])
            config["group.id"] = group
            let probe = try KafkaConsumer(configuration: config)
            defer { try? probe.close() }
            let offsets = try probe.committedOffsets(
                for: (0..<partitions).map { TopicPartition(topic: "universeg.requests", partition: Int32($0)) })
            return Dictionary(uniqueKeysWithValues: offsets.map { ($0.key.partition, $0.value) })
        }
    }
}
