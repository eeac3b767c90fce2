internal import CRdKafka
internal import Synchronization

/// A Kafka group consumer (librdkafka high-level consumer) with manual offset storing.
///
/// Fixed behaviour, whatever the configuration says otherwise:
/// - `enable.auto.offset.store=false`: nothing counts as processed until ``storeOffset(topic:partition:offset:)``
///   is called for it; stored offsets are committed by the auto-commit timer (`enable.auto.commit`,
///   default true here), by ``commitSync()``, on revocation and on ``close()``. This gives
///   at-least-once processing: store a message's offset only after its result is durable.
/// - `partition.assignment.strategy` defaults to `cooperative-sticky` (incremental rebalancing,
///   members keep their partitions during a rebalance); the rebalance callback handles the eager
///   protocol too if another strategy is configured.
/// - `group.id` is required.
///
/// Threading: ``poll(timeout:)`` blocks the calling thread; call it from one dedicated thread or
/// executor (not the Swift cooperative pool) and often enough that `max.poll.interval.ms` is
/// never exceeded, even while messages are being processed elsewhere: apply back-pressure with
/// ``pause(_:)`` rather than by not polling. Rebalance callbacks and statistics callbacks run
/// inside `poll`. Every other method is thread-safe and may be called concurrently with `poll`.
/// Call ``close()`` once polling has stopped; `deinit` destroys the librdkafka handle (closing it
/// first if `close()` was not called).
public final class KafkaConsumer: Sendable {
    private let handle: RDKafkaHandle
    private let context: ClientContext
    private let closed = Atomic<Bool>(false)

    /// The configuration the client was created with (after defaults were added).
    public let configuration: KafkaConfiguration

    /// Creates the consumer (it joins no group until ``subscribe(topics:)``).
    ///
    /// - Parameter logHandler: receives librdkafka's log lines instead of stderr. It is called on
    ///   librdkafka's internal threads and must be quick and thread-safe.
    /// - Throws: ``KafkaError`` (`_INVALID_ARG`) for a missing `group.id`,
    ///   `enable.auto.offset.store=true`, or any property librdkafka rejects.
    public init(
        configuration: KafkaConfiguration, logHandler: (@Sendable (KafkaLogRecord) -> Void)? = nil
    ) throws {
        var configuration = configuration
        guard let group = configuration.groupID, !group.isEmpty else {
            throw KafkaError(.invalidArgument, "configuration property \"group.id\" is required for a consumer",
                             isRetriable: false, key: "group.id")
        }
        if let store = configuration["enable.auto.offset.store"], store != "false" {
            throw KafkaError(.invalidArgument,
                             "configuration property \"enable.auto.offset.store\" must be false: offsets are stored with storeOffset",
                             isRetriable: false, key: "enable.auto.offset.store")
        }
        configuration["enable.auto.offset.store"] = "false"
        if configuration["enable.auto.commit"] == nil { configuration["enable.auto.commit"] = "true" }
        if configuration["partition.assignment.strategy"] == nil {
            configuration["partition.assignment.strategy"] = "cooperative-sticky"
        }
        let context = ClientContext(logHandler: logHandler)
        let pointer = try RDKafkaConfig.makeHandle(RD_KAFKA_CONSUMER, properties: configuration.properties) {
            context.install(on: $0, rebalance: true, errors: true)
        }
        // Route the main queue (statistics, errors) to the consumer queue served by poll.
        rd_kafka_poll_set_consumer(pointer)
        self.handle = RDKafkaHandle(pointer: pointer)
        self.context = context
        self.configuration = configuration
    }

    deinit {
        // Explicit teardown order: destroy the handle (closing the consumer if needed and joining
        // librdkafka's threads, so no callback can run afterwards), then release the context.
        withExtendedLifetime(context) {
            rd_kafka_destroy(handle.pointer)
        }
    }

    /// The group member id assigned by the coordinator (empty before the first join).
    public var memberID: String {
        guard let id = rd_kafka_memberid(handle.pointer) else { return "" }
        defer { rd_kafka_mem_free(handle.pointer, id) }
        return String(cString: id)
    }

    /// Subscribes to `topics` (replacing any earlier subscription). Partitions arrive through the
    /// rebalance callback during ``poll(timeout:)``. A topic name starting with `^` is a regex.
    public func subscribe(topics: [String]) throws {
        try ensureOpen("subscribe")
        let entries = topics.map { (TopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), offset: Int64(0)) }
        let err = try RDKafkaTopicPartitionList.with(entries) { rd_kafka_subscribe(handle.pointer, $0) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "subscribe to \(topics)") }
    }

    /// Assigns `partitions` manually, each starting at its offset (no group rebalancing; offsets
    /// are still stored and committed under `group.id`). Used to replay fixed offset ranges.
    public func assign(_ partitions: [(TopicPartition, Int64)]) throws {
        try ensureOpen("assign")
        let err = try RDKafkaTopicPartitionList.with(partitions.map { ($0.0, offset: $0.1) }) { rd_kafka_assign(handle.pointer, $0) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "assign") }
    }

    /// Waits up to `timeout` for the next record or message-level event (see ``KafkaMessage``).
    ///
    /// Blocks the calling thread. Serves rebalance and statistics callbacks. Returns nil when
    /// nothing arrived in time, and always nil after ``close()``. Errors are returned as values
    /// (`message.error`), e.g. `_PARTITION_EOF` or a fatal error (`error.isFatal`), never thrown.
    public func poll(timeout: Duration) -> KafkaMessage? {
        guard !closed.load(ordering: .acquiring) else { return nil }
        guard let raw = rd_kafka_consumer_poll(handle.pointer, milliseconds(timeout)) else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        return KafkaMessage(copying: raw, handle: handle.pointer)
    }

    /// Returns and forgets the rebalance events recorded since the last call, oldest first.
    public func drainRebalanceEvents() -> [KafkaRebalanceEvent] {
        context.drainRebalanceEvents()
    }

    /// Returns and forgets the client-level errors librdkafka reported since the last call
    /// (`_ALL_BROKERS_DOWN`, `_TRANSPORT`, a fatal error, ...), oldest first; served by `poll`.
    public func drainErrors() -> [KafkaError] {
        context.drainErrors()
    }

    /// Marks the record at `offset` of `topic`/`partition` as processed.
    ///
    /// Stores `offset + 1`, the offset of the *next* record to consume (Kafka's committed-offset
    /// convention); pass the offset of the record you processed, not the next one. The stored
    /// offset is committed later (auto-commit timer, ``commitSync()``, revocation or ``close()``).
    /// Storing is per partition and last-write-wins: store offsets in increasing order, since
    /// storing a record's offset implies every earlier record of that partition is done.
    ///
    /// - Throws: ``KafkaError`` with `_STATE` when the partition is not (or no longer) assigned
    ///   to this consumer, e.g. after it was revoked.
    public func storeOffset(topic: String, partition: Int32, offset: Int64) throws {
        try ensureOpen("storeOffset")
        guard offset >= 0, offset < Int64.max else {
            throw KafkaError(.invalidArgument, "storeOffset: invalid offset \(offset) for \(topic)[\(partition)]")
        }
        let entry = (TopicPartition(topic: topic, partition: partition), offset: offset + 1)
        try RDKafkaTopicPartitionList.with([entry]) { list in
            let err = rd_kafka_offsets_store(handle.pointer, list)
            if let error = RDKafkaTopicPartitionList.firstError(list, "store offset for") { throw error }
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError.rdKafka(err, "store offset \(offset) for \(topic)[\(partition)]")
            }
        }
    }

    /// ``storeOffset(topic:partition:offset:)`` for a consumed record.
    public func storeOffset(for message: KafkaMessage) throws {
        try storeOffset(topic: message.topic, partition: message.partition, offset: message.offset)
    }

    /// Commits the stored offsets of all assigned partitions now and waits for the broker's answer.
    /// Blocks the calling thread. Having nothing new to commit is not an error.
    public func commitSync() throws {
        try ensureOpen("commitSync")
        let err = rd_kafka_commit(handle.pointer, nil, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            if err == RD_KAFKA_RESP_ERR__FATAL, let fatal = KafkaError.fatalError(of: handle.pointer) { throw fatal }
            throw KafkaError.rdKafka(err, "commit")
        }
    }

    /// The group's committed offsets for `partitions` (the next offset to consume; -1001 when the
    /// group has none). Asks the group coordinator; blocks up to `timeout`.
    public func committedOffsets(
        for partitions: [TopicPartition], timeout: Duration = .seconds(10)
    ) throws -> [TopicPartition: Int64] {
        try ensureOpen("committedOffsets")
        return try RDKafkaTopicPartitionList.with(partitions.map { ($0, offset: Int64(RD_KAFKA_OFFSET_INVALID)) }) { list in
            let err = rd_kafka_committed(handle.pointer, list, milliseconds(timeout))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "committed offsets") }
            if let error = RDKafkaTopicPartitionList.firstError(list, "committed offset of") { throw error }
            var result: [TopicPartition: Int64] = [:]
            for entry in RDKafkaTopicPartitionList.entries(list) { result[entry.topicPartition] = entry.offset }
            return result
        }
    }

    /// Stops fetching from `partitions` (assigned ones) until ``resume(_:)``. Polling must go on.
    /// A partition that is revoked and assigned again comes back unpaused (the rebalance callback
    /// resumes every newly assigned partition; librdkafka itself would keep it paused).
    public func pause(_ partitions: [TopicPartition]) throws {
        try changePause(partitions, pause: true)
    }

    /// Resumes fetching from paused `partitions`.
    public func resume(_ partitions: [TopicPartition]) throws {
        try changePause(partitions, pause: false)
    }

    /// The partitions currently assigned to this consumer, sorted.
    public func assignment() throws -> [TopicPartition] {
        try ensureOpen("assignment")
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle.pointer, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "assignment") }
        return list.map { RDKafkaTopicPartitionList.entries($0).map(\.topicPartition).sorted() } ?? []
    }

    /// The latest statistics document, when `statistics.interval.ms` is set and one has been
    /// emitted (statistics are delivered during ``poll(timeout:)``).
    public func statistics() -> KafkaStatistics? {
        context.latestStatisticsJSON.map(KafkaStatistics.init(json:))
    }

    /// The consumer's fatal error, if librdkafka raised one (the consumer is then unusable).
    public var fatalKafkaError: KafkaError? { KafkaError.fatalError(of: handle.pointer) }

    /// Leaves the group cleanly: revokes the assignment (recorded as a rebalance event), commits
    /// stored offsets when auto commit is on, and sends LeaveGroup so the partitions move to the
    /// other members at once. Blocks until done. Later calls do nothing; later `poll`s return nil.
    public func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let err = rd_kafka_consumer_close(handle.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "close consumer") }
    }

    private func changePause(_ partitions: [TopicPartition], pause: Bool) throws {
        try ensureOpen(pause ? "pause" : "resume")
        guard !partitions.isEmpty else { return }
        try RDKafkaTopicPartitionList.with(partitions.map { ($0, offset: Int64(RD_KAFKA_OFFSET_INVALID)) }) { list in
            let err = pause ? rd_kafka_pause_partitions(handle.pointer, list)
                            : rd_kafka_resume_partitions(handle.pointer, list)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, pause ? "pause" : "resume") }
            if let error = RDKafkaTopicPartitionList.firstError(list, pause ? "pause" : "resume") { throw error }
        }
    }

    private func ensureOpen(_ operation: String) throws {
        if closed.load(ordering: .acquiring) {
            throw KafkaError(.state, "\(operation): the consumer is closed", isRetriable: false)
        }
    }
}
