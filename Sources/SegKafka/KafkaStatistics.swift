internal import Foundation

/// One librdkafka statistics document (`statistics.interval.ms`), as emitted, plus the
/// per-partition figures a consumer needs for lag metrics.
///
/// The JSON format is documented in librdkafka's STATISTICS.md. Only partitions the client
/// fetches or produces to appear; librdkafka's internal "unassigned" partition (-1) is skipped.
public struct KafkaStatistics: Sendable {
    /// Per-partition figures. librdkafka reports -1 for values it does not know yet.
    public struct Partition: Hashable, Sendable {
        /// High watermark minus the consumer's committed offset (`consumer_lag`).
        public var consumerLag: Int64
        /// High watermark minus the consumer's stored offset (`consumer_lag_stored`).
        public var consumerLagStored: Int64
        public var committedOffset: Int64
        public var storedOffset: Int64
        /// The partition's high watermark (`hi_offset`).
        public var highWatermark: Int64
    }

    /// The raw document.
    public let json: String
    /// When librdkafka produced it (`ts`, microseconds on librdkafka's monotonic clock).
    public let timestampMicroseconds: Int64?
    public let partitions: [TopicPartition: Partition]
    /// Brokers of the cluster (configured or learned; not librdkafka's internal ones) whose
    /// connection is up (`brokers.*.state == "UP"`); nil when the document lists none.
    public let brokersUp: Int?
    /// Whether any broker is reachable: true when one is up, false when none is up and every one
    /// has been tried (none still in its first `INIT` state), nil when that is not known yet.
    public let brokersReachable: Bool?

    /// Consumer lag of each partition whose lag is known (`consumer_lag` ≥ 0).
    public var consumerLag: [TopicPartition: Int64] {
        partitions.compactMapValues { $0.consumerLag >= 0 ? $0.consumerLag : nil }
    }

    /// The sum of `consumerLag`.
    public var totalConsumerLag: Int64 { consumerLag.values.reduce(0, +) }

    /// Parses `json`; a document that is not the expected shape gives empty `partitions` rather
    /// than an error, since statistics are diagnostics only.
    public init(json: String) {
        self.json = json
        let root = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        self.timestampMicroseconds = Self.int64(root["ts"])
        var partitions: [TopicPartition: Partition] = [:]
        for case let (topicName, topic as [String: Any]) in root["topics"] as? [String: Any] ?? [:] {
            for case let (_, partition as [String: Any]) in topic["partitions"] as? [String: Any] ?? [:] {
                guard let id = Self.int64(partition["partition"]), id >= 0, id <= Int64(Int32.max) else { continue }
                partitions[TopicPartition(topic: topicName, partition: Int32(id))] = Partition(
                    consumerLag: Self.int64(partition["consumer_lag"]) ?? -1,
                    consumerLagStored: Self.int64(partition["consumer_lag_stored"]) ?? -1,
                    committedOffset: Self.int64(partition["committed_offset"]) ?? -1,
                    storedOffset: Self.int64(partition["stored_offset"]) ?? -1,
                    highWatermark: Self.int64(partition["hi_offset"]) ?? -1)
            }
        }
        self.partitions = partitions
        let brokers = (root["brokers"] as? [String: Any] ?? [:]).values.compactMap { $0 as? [String: Any] }
            .filter { !["internal", "logical"].contains($0["source"] as? String ?? "") }
        let states = brokers.map { $0["state"] as? String ?? "" }
        self.brokersUp = brokers.isEmpty ? nil : states.filter { $0 == "UP" }.count
        self.brokersReachable = states.isEmpty ? nil : states.contains("UP") ? true : states.contains("INIT") ? nil : false
    }

    private static func int64(_ value: Any?) -> Int64? {
        switch value {
        case let number as Int: Int64(number)
        case let number as Int64: number
        case let number as Double: number.isFinite ? Int64(exactly: number.rounded()) : nil
        case let number as NSNumber: number.int64Value
        default: nil
        }
    }
}
