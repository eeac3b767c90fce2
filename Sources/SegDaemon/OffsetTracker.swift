/// Which offsets of each partition may be committed.
///
/// Requests of one partition can finish out of order (several run at once). An offset is
/// committable only when it and every earlier offset taken from that partition are done, so
/// the committed position never skips a request that is still running: a crash redelivers
/// it instead of losing it. Revoking a partition forgets its state, so work that finishes
/// afterwards stores nothing for it. Pure value type: no Kafka, no locks.
public struct OffsetTracker: Sendable, Equatable {
    public struct Key: Hashable, Sendable, Comparable {
        public let topic: String
        public let partition: Int32
        public init(topic: String, partition: Int32) {
            self.topic = topic
            self.partition = partition
        }
        public static func < (a: Key, b: Key) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    }

    struct PartitionState: Sendable, Equatable {
        /// Offsets taken and not yet done, in order.
        var pending: [Int64] = []
        /// Offsets done while an earlier one was still pending.
        var doneEarly: Set<Int64> = []
    }

    private var partitions: [Key: PartitionState] = [:]

    public init() {}

    /// Records that `offset` of `key` was handed to a worker.
    public mutating func started(_ key: Key, offset: Int64) {
        partitions[key, default: PartitionState()].pending.append(offset)
    }

    /// Marks `offset` done; returns the offset to store for `key` (the last offset of the
    /// completed prefix), or nil when nothing new became committable (or the partition was revoked).
    public mutating func finished(_ key: Key, offset: Int64) -> Int64? {
        guard var state = partitions[key], state.pending.contains(offset) else { return nil }
        state.doneEarly.insert(offset)
        var committable: Int64? = nil
        while let first = state.pending.first, state.doneEarly.contains(first) {
            state.pending.removeFirst()
            state.doneEarly.remove(first)
            committable = first
        }
        partitions[key] = state
        return committable
    }

    /// Forgets the partitions (revoked or lost).
    public mutating func revoked(_ keys: [Key]) {
        for k in keys { partitions[k] = nil }
    }

    /// Requests taken and not finished, over all partitions.
    public var inFlight: Int { partitions.values.reduce(0) { $0 + $1.pending.count } }

    /// Whether `key` is tracked (assigned and seen).
    public func isTracked(_ key: Key) -> Bool { partitions[key] != nil }
}
