internal import CRdKafka

/// Cluster facts: brokers and the partition count of each topic.
public struct KafkaClusterMetadata: Hashable, Sendable {
    public struct Broker: Hashable, Sendable {
        public var id: Int32
        public var host: String
        public var port: Int
    }

    public var brokers: [Broker]
    /// Topics without a metadata error, mapped to their partition count.
    public var partitionCounts: [String: Int]
}

/// Administrative and offset queries for tests and tools (topic creation, watermarks,
/// offsets for timestamps, metadata). Every method blocks the calling thread for at most its
/// `timeout`. Thread-safe.
public final class KafkaAdminClient: Sendable {
    private let handle: RDKafkaHandle
    private let context: ClientContext

    /// - Throws: ``KafkaError`` (`_INVALID_ARG`) for any property librdkafka rejects.
    public init(
        configuration: KafkaConfiguration, logHandler: (@Sendable (KafkaLogRecord) -> Void)? = nil
    ) throws {
        let context = ClientContext(logHandler: logHandler)
        let pointer = try RDKafkaConfig.makeHandle(RD_KAFKA_PRODUCER, properties: configuration.properties) {
            context.install(on: $0)
        }
        self.handle = RDKafkaHandle(pointer: pointer)
        self.context = context
    }

    deinit {
        withExtendedLifetime(context) {
            rd_kafka_destroy(handle.pointer)
        }
    }

    /// Creates topics (replication factor `replicationFactor`) and waits until their metadata
    /// shows every partition. A topic that already exists counts as created (its partition count
    /// is not checked against the request).
    ///
    /// - Throws: ``KafkaError`` for the first topic that could not be created, or `_TIMED_OUT`.
    public func createTopics(
        _ topics: [(name: String, partitions: Int32)], replicationFactor: Int32 = 1, timeout: Duration = .seconds(30)
    ) throws {
        guard !topics.isEmpty else { return }
        serveMainQueue()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var newTopics: [OpaquePointer?] = []
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        for topic in topics {
            var errstr = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(
                topic.name, topic.partitions, replicationFactor, &errstr, errstr.count)
            else {
                throw KafkaError(.invalidArgument, "create topic \(topic.name): \(decodeErrorBuffer(errstr))")
            }
            newTopics.append(newTopic)
        }
        guard let queue = rd_kafka_queue_new(handle.pointer) else {
            throw KafkaError(.invalidArgument, "rd_kafka_queue_new failed")
        }
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        var errstr = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds(timeout), &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds(timeout), &errstr, errstr.count)
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(handle.pointer, buffer.baseAddress, buffer.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, milliseconds(timeout) &+ 1000) else {
            throw KafkaError(.timedOut, "create topics \(topics.map(\.name)): no answer in time")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        guard eventError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(eventError, "create topics: \(decodeCString(rd_kafka_event_error_string(event)))")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError(.invalidArgument, "create topics: unexpected event type \(rd_kafka_event_type(event))")
        }
        var count = 0
        if let results = rd_kafka_CreateTopics_result_topics(result, &count) {
            for index in 0..<count {
                guard let topicResult = results[index] else { continue }
                let err = rd_kafka_topic_result_error(topicResult)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else {
                    let name = decodeCString(rd_kafka_topic_result_name(topicResult))
                    let reason = decodeCString(rd_kafka_topic_result_error_string(topicResult))
                    throw KafkaError.rdKafka(err, "create topic \(name): \(reason)")
                }
            }
        }
        try waitForTopics(Set(topics.map(\.name)), deadline: deadline, clock: clock)
    }

    /// The low and high watermarks of a partition: the first offset still stored and the offset
    /// the next record will get. Asks the partition leader.
    public func watermarks(
        topic: String, partition: Int32, timeout: Duration = .seconds(10)
    ) throws -> (low: Int64, high: Int64) {
        serveMainQueue()
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_query_watermark_offsets(handle.pointer, topic, partition, &low, &high, milliseconds(timeout))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(err, "watermarks of \(topic)[\(partition)]")
        }
        return (low, high)
    }

    /// For each partition, the earliest offset whose timestamp is at or after the given time
    /// (milliseconds since the epoch); -1 (`RD_KAFKA_OFFSET_END`) when no such record exists yet.
    public func offsetsForTimes(
        _ timestamps: [TopicPartition: Int64], timeout: Duration = .seconds(10)
    ) throws -> [TopicPartition: Int64] {
        guard !timestamps.isEmpty else { return [:] }
        serveMainQueue()
        return try RDKafkaTopicPartitionList.with(timestamps.map { ($0.key, offset: $0.value) }) { list in
            let err = rd_kafka_offsets_for_times(handle.pointer, list, milliseconds(timeout))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.rdKafka(err, "offsets for times") }
            if let error = RDKafkaTopicPartitionList.firstError(list, "offset for time of") { throw error }
            var result: [TopicPartition: Int64] = [:]
            for entry in RDKafkaTopicPartitionList.entries(list) { result[entry.topicPartition] = entry.offset }
            return result
        }
    }

    /// ``offsetsForTimes(_:timeout:)`` for every partition of `topic`.
    public func offsetsForTime(
        topic: String, millisecondsSinceEpoch: Int64, timeout: Duration = .seconds(10)
    ) throws -> [TopicPartition: Int64] {
        guard let partitions = try metadata(timeout: timeout).partitionCounts[topic] else {
            throw KafkaError(.unknownTopic, "offsets for time: topic \(topic) does not exist")
        }
        let query = (0..<partitions).map { (TopicPartition(topic: topic, partition: Int32($0)), millisecondsSinceEpoch) }
        return try offsetsForTimes(Dictionary(uniqueKeysWithValues: query), timeout: timeout)
    }

    /// Brokers and topics as the cluster reports them.
    public func metadata(timeout: Duration = .seconds(10)) throws -> KafkaClusterMetadata {
        serveMainQueue()
        var pointer: UnsafePointer<rd_kafka_metadata_t>?
        let err = rd_kafka_metadata(handle.pointer, 1, nil, &pointer, milliseconds(timeout))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata = pointer else {
            throw KafkaError.rdKafka(err, "metadata")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let raw = metadata.pointee
        let brokers = (0..<Int(max(0, raw.broker_cnt))).compactMap { index -> KafkaClusterMetadata.Broker? in
            guard let broker = raw.brokers?[index] else { return nil }
            return .init(id: broker.id, host: decodeCString(broker.host), port: Int(broker.port))
        }
        var partitionCounts: [String: Int] = [:]
        for index in 0..<Int(max(0, raw.topic_cnt)) {
            guard let topic = raw.topics?[index], topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            partitionCounts[decodeCString(topic.topic)] = Int(topic.partition_cnt)
        }
        return KafkaClusterMetadata(brokers: brokers, partitionCounts: partitionCounts)
    }

    private func waitForTopics(_ names: Set<String>, deadline: ContinuousClock.Instant, clock: ContinuousClock) throws {
        while true {
            let remaining = deadline - clock.now
            if let metadata = try? metadata(timeout: max(remaining, .milliseconds(100))),
               names.allSatisfy({ (metadata.partitionCounts[$0] ?? 0) > 0 }) {
                return
            }
            guard clock.now < deadline else {
                throw KafkaError(.timedOut, "created topics \(names.sorted()) did not appear in metadata in time")
            }
            serveMainQueue(timeout: .milliseconds(100))
        }
    }

    /// Serves (and discards) events on the main queue, e.g. error events, so they do not pile up.
    private func serveMainQueue(timeout: Duration = .zero) {
        _ = rd_kafka_poll(handle.pointer, milliseconds(timeout))
    }
}
