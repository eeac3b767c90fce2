import ArgumentParser
import Foundation
import Logging
import SegDaemon
import SegIO
import SegKafka
import SegOperations
import SegService
import SegTiming

/// Reprocesses a time range of the requests topic (e.g. with new weights) into a results topic.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Reprocess the requests of a time range (e.g. with new weights) and exit.",
        discussion: """
            Uses its own consumer group (default universeg-replay-<time>) with manual assignment: \
            start offsets from offsetsForTimes(--from); each partition is read up to its end or its \
            first record newer than --to (default: when the replay started), so records arriving \
            later are not replayed. Records older than --from are skipped. Results \
            carry "replay": true and the original topic/partition/offset. Times: ISO 8601 \
            (2026-11-27T10:00:00Z), milliseconds since the epoch, or relative (-30m, -2h, -1d). \
            Other settings as for serve (config file, UNIVERSEG_* environment).
            """)

    @Option(help: "Start of the time range.") var from: String
    @Option(help: "End of the time range (default: now).") var to: String?
    @Option(name: .customLong("results-topic"), help: "Where the replayed results go (required, to keep them apart).")
    var resultsTopic: String
    @Option(name: .customLong("requests-topic")) var requestsTopic: String?
    @Option(name: .customLong("dlq-topic")) var dlqTopic: String?
    @Option(name: .customLong("metrics-topic")) var metricsTopic: String?
    @Option(help: "Weights file (default: the configured or shipped weights).") var weights: String?
    @Option(help: "Consumer group (default: universeg-replay-<time>).") var group: String?
    @Option(help: "JSON configuration file.") var config: String?
    @Option(help: "Kafka bootstrap servers.") var brokers: String?
    @Option(help: "Support-set store URL.") var store: String?
    @Option(name: .customLong("max-in-flight")) var maxInFlight: Int?

    func run() throws {
        TerminationSignals.install()
        let now = Date()
        let fromMs = try Self.parseTime(from, now: now)
        let toMs = try to.map { try Self.parseTime($0, now: now) } ?? Int64(now.timeIntervalSince1970 * 1000)
        if toMs < fromMs { throw ValidationError("--to is before --from") }
        var flags: [String: String] = ["kafka.results_topic": resultsTopic, "metrics.address": "off"]
        let given: [(String, String?)] = [
            ("kafka.requests_topic", requestsTopic), ("kafka.dlq_topic", dlqTopic), ("kafka.metrics_topic", metricsTopic),
            ("model.weights", weights), ("kafka.brokers", brokers), ("store.url", store),
            ("inference.max_in_flight", maxInFlight.map(String.init)),
        ]
        for case let (key, value?) in given { flags[key] = value }
        let groupName = group ?? "universeg-replay-\(Int64(now.timeIntervalSince1970))"
        flags["kafka.group"] = groupName
        let runtime = try WorkerRuntime(configFile: config, flags: flags, label: "universeg.replay")
        let settings = runtime.settings
        guard settings.resultsTopic != settings.requestsTopic else { throw ValidationError("--results-topic must differ from the requests topic") }

        let plan = try Self.plan(runtime.common, topic: settings.requestsTopic, from: fromMs, to: toMs)
        runtime.logger.notice("replay plan", metadata: [
            "kafka_topic": "\(settings.requestsTopic)", "partitions": "\(plan.startOffsets.count)",
            "expected_records": "\(plan.expectedRecords)",
            "group": "\(groupName)", "results_topic": "\(settings.resultsTopic)", "model": "\(runtime.weights.name)"])
        let clock = ContinuousClock.now
        try runtime.warmUp()
        let worker = try SegmentationWorker(
            configuration: settings, processor: runtime.processor,
            consumerConfiguration: runtime.consumerConfiguration(group: groupName),
            producerConfiguration: runtime.common, logger: runtime.logger, mode: .replay(plan))
        TerminationSignals.onSignal { _ in worker.requestStop() }
        try worker.start()
        try worker.run()
        let c = worker.counters
        let summary = worker.replaySummary
        let seconds = (ContinuousClock.now - clock).milliseconds / 1000
        print("""
            replayed \(summary.replayed) requests from \(settings.requestsTopic) into \(settings.resultsTopic) \
            (\(c.processed) ok, \(c.failed) failed, \(summary.skippedOutsideTimeRange) outside the time range) \
            in \(String(format: "%.1f", seconds)) s with \(runtime.weights.name) (sha256 \(runtime.weights.sha256.prefix(12))); \
            group \(groupName)
            """)
        if worker.isStopping { throw ExitCode(130) }
    }

    /// Start offsets from offsetsForTimes(from) (the high watermark where nothing is that new).
    static func plan(_ config: KafkaConfiguration, topic: String, from: Int64, to: Int64) throws -> SegmentationWorker.ReplayPlan {
        let admin = try KafkaAdminClient(configuration: config)
        var starts: [TopicPartition: Int64] = [:]
        var expected: Int64 = 0
        for (partition, start) in try admin.offsetsForTime(topic: topic, millisecondsSinceEpoch: from) {
            let (low, high) = try admin.watermarks(topic: topic, partition: partition.partition)
            let first = start < 0 ? high : max(start, low)
            // Nothing to read: leave it unassigned (an empty partition may never report EOF).
            guard first < high else { continue }
            starts[partition] = first
            expected += high - first
        }
        return .init(startOffsets: starts, fromMilliseconds: from, toMilliseconds: to, expectedRecords: expected)
    }

    /// ISO 8601, epoch milliseconds, or relative to `now` (-90s, -30m, -2h, -1d).
    static func parseTime(_ text: String, now: Date) throws -> Int64 {
        if let ms = Int64(text), ms >= 0 { return ms }
        if text.hasPrefix("-"), let unit = text.last, let amount = Double(text.dropFirst().dropLast()), amount >= 0 {
            let seconds: Double? = switch unit {
            case "s": amount
            case "m": amount * 60
            case "h": amount * 3600
            case "d": amount * 86400
            default: nil
            }
            if let seconds { return Int64((now.timeIntervalSince1970 - seconds) * 1000) }
        }
        for style in [Date.ISO8601FormatStyle(includingFractionalSeconds: true), Date.ISO8601FormatStyle()] {
            if let date = try? style.parse(text) { return Int64(date.timeIntervalSince1970 * 1000) }
        }
        throw ValidationError("cannot read the time '\(text)': use ISO 8601 (2026-11-27T10:00:00Z), epoch milliseconds or -30m/-2h/-1d")
    }
}
