import Foundation
import SegKafka
import SegTesting
import Synchronization
import Testing

/// Producer, consumer and admin behaviour against a real Kafka-protocol broker (Tansu). Each
/// test starts its own broker (in-memory, a fraction of a second) and uses unique topic and
/// group names. Consumer-group joins on Tansu take about session.timeout.ms / 2 = 3 s.
@Suite(.enabled(if: TansuBroker.isConfigured, TansuBroker.skipReason), .timeLimit(.minutes(1)))
struct TansuBrokerTests {
    @Test func roundTripKeepsKeyHeadersNullValueAndBinaryBytes() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("roundtrip")
        try await createTopics([(topic, 1)], bootstrap: broker.bootstrapServers)
        try await createTopics([(topic, 1)], bootstrap: broker.bootstrapServers)   // already exists: success

        let producer = try KafkaProducer(configuration: producerConfiguration(broker.bootstrapServers))
        let headers: [(String, [UInt8])] = [("traceparent", bytes("00-abc-01")), ("bin", [0, 0xFF]), ("dup", [1]), ("dup", [2])]
        try await producer.send(topic: topic, key: bytes("request-1"), value: bytes("{\"x\":1}"), headers: headers)
        try await producer.send(topic: topic, key: bytes("request-1"), value: nil)          // tombstone
        try await producer.send(topic: topic, value: [0xFE, 0xFF, 0x00])                      // no key, not UTF-8
        try await closeOffPool(producer)

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: uniqueName("g")))
        defer { try? consumer.close() }
        try consumer.subscribe(topics: [topic])
        let records = try await collect(consumer, count: 3)
        try #require(records.count == 3)
        #expect(records.map(\.offset) == [0, 1, 2])
        #expect(records[0].keyString == "request-1" && records[0].valueString == "{\"x\":1}")
        #expect(records[0].headers.map(\.0) == headers.map(\.0))
        #expect(records[0].headers.map(\.1) == headers.map(\.1))
        #expect(records[0].header("dup") == [2])
        #expect(records[0].timestamp != nil)
        #expect(records[1].isTombstone && records[1].key == bytes("request-1") && records[1].headers.isEmpty)
        #expect(records[2].key == nil && records[2].value == [0xFE, 0xFF, 0x00] && records[2].valueString == nil)
        #expect(consumer.drainRebalanceEvents().contains(.assigned([TopicPartition(topic: topic, partition: 0)])))
        try await closeOffPool(consumer)
    }

    @Test func sendReturnsOnlyAfterTheBrokerAcknowledged() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("ack")
        let admin = try KafkaAdminClient(configuration: KafkaConfiguration(bootstrapServers: [broker.bootstrapServers]))
        try await blocking { try admin.createTopics([(topic, 1)]) }
        let producer = try KafkaProducer(configuration: producerConfiguration(broker.bootstrapServers))
        let before = Int64(Date().timeIntervalSince1970 * 1000) - 1000
        for index in 0..<3 {
            let report = try await producer.send(topic: topic, value: bytes("record \(index)"))
            // Acknowledged means: nothing left in librdkafka's queues, and the broker already
            // counts the record below its high watermark.
            #expect(report.offset == Int64(index) && report.partition == 0 && report.topic == topic)
            #expect(producer.outstandingCount == 0)
            let (low, high) = try await blocking { try admin.watermarks(topic: topic, partition: 0) }
            #expect(low == 0 && high == report.offset + 1)
        }
        try await closeOffPool(producer)
        // offsetsForTimes, for the replay command: from a time before the records -> the first
        // one. (Kafka answers -1 for a time after the last record; Tansu 0.6 answers 0 for any
        // time and librdkafka's mock cluster -1 for any time, so only the lookup itself is checked.)
        let partition = TopicPartition(topic: topic, partition: 0)
        let future = Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000
        let (fromPast, fromFuture, metadata) = try await blocking {
            (try admin.offsetsForTime(topic: topic, millisecondsSinceEpoch: before),
             try admin.offsetsForTimes([partition: future]), try admin.metadata())
        }
        #expect(fromPast == [partition: 0])
        #expect(fromFuture.keys.sorted() == [partition])
        #expect(metadata.partitionCounts[topic] == 1)
    }

    @Test func committedOffsetsLetANewConsumerResumeExactlyAfterThem() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("resume")
        let group = uniqueName("resume-group")
        try await produceNumbered(0..<6, to: topic, broker: broker)

        let first = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group))
        try first.subscribe(topics: [topic])
        let firstRecords = try await collect(first, count: 3)
        try #require(firstRecords.count == 3)
        for record in firstRecords { try first.storeOffset(for: record) }
        let partition = TopicPartition(topic: topic, partition: 0)
        let committed = try await blocking {
            try first.commitSync()
            return try first.committedOffsets(for: [partition])
        }
        #expect(committed == [partition: 3])   // the offset of the next record to read
        try await closeOffPool(first)

        let second = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group))
        try second.subscribe(topics: [topic])
        let secondRecords = try await collect(second, count: 3, settle: .seconds(1))
        #expect(firstRecords.map(\.valueString) == ["0", "1", "2"])
        #expect(secondRecords.map(\.valueString) == ["3", "4", "5"])   // nothing re-read, nothing skipped
        try await closeOffPool(second)
    }

    @Test func recordsWhoseOffsetsWereNotStoredAreRedelivered() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("redeliver")
        let group = uniqueName("redeliver-group")
        try await produceNumbered(0..<3, to: topic, broker: broker)

        // The first consumer receives all three but finishes only the first; auto commit is on
        // and close() commits what was stored.
        let first = try KafkaConsumer(configuration: consumerConfiguration(
            broker.bootstrapServers, group: group, ["auto.commit.interval.ms": "100"]))
        try first.subscribe(topics: [topic])
        let firstRecords = try await collect(first, count: 3)
        try #require(firstRecords.count == 3)
        try first.storeOffset(for: firstRecords[0])
        try await closeOffPool(first)
        #expect(first.drainRebalanceEvents().contains(.revoked([TopicPartition(topic: topic, partition: 0)])))

        let second = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group))
        try second.subscribe(topics: [topic])
        let redelivered = try await collect(second, count: 2, settle: .seconds(1))
        #expect(redelivered.map(\.valueString) == ["1", "2"])
        #expect(redelivered.map(\.offset) == [1, 2])
        try await closeOffPool(second)
    }

    @Test func pauseStopsDeliveryAndResumeRestartsIt() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("pause")
        try await produceNumbered(0..<2, to: topic, broker: broker)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: uniqueName("pause")))
        try consumer.subscribe(topics: [topic])
        #expect(try await collect(consumer, count: 2).count == 2)
        let assignment = try consumer.assignment()
        #expect(assignment == [TopicPartition(topic: topic, partition: 0)])

        try consumer.pause(assignment)
        try await produceNumbered(2..<4, to: topic, broker: broker)
        let whilePaused = try await collect(consumer, count: 1, timeout: .seconds(2))
        #expect(whilePaused.isEmpty)

        try consumer.resume(assignment)
        let afterResume = try await collect(consumer, count: 2, timeout: .seconds(10))
        #expect(afterResume.map(\.valueString) == ["2", "3"])
        try await closeOffPool(consumer)
    }

    /// librdkafka keeps a partition's pause through a revocation; the rebalance callback resumes
    /// what it assigns, so a partition paused when revoked is fetched again once it comes back.
    /// The eager protocol revokes every partition at each rebalance, so the first member gets
    /// back one of the partitions it had paused.
    @Test func aPartitionPausedWhenRevokedIsFetchedWhenAssignedAgain() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("repause")
        let group = uniqueName("repause-group")
        try await createTopics([(topic, 2)], bootstrap: broker.bootstrapServers)
        let all = Set((0..<2).map { TopicPartition(topic: topic, partition: Int32($0)) })
        let eager = ["partition.assignment.strategy": "roundrobin"]

        let first = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group, eager))
        try first.subscribe(topics: [topic])
        #expect(try await pollUntil([first]) { Set(try first.assignment()) == all })
        try first.pause(Array(all))

        let second = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group, eager))
        try second.subscribe(topics: [topic])
        let shared = try await pollUntil([first, second], timeout: .seconds(25)) {
            let a = Set(try first.assignment()), b = Set(try second.assignment())
            return a.count == 1 && b.count == 1 && a.union(b) == all
        }
        try #require(shared)
        let firstOwns = try #require(try first.assignment().first)
        let revoked = first.drainRebalanceEvents().flatMap { event -> [TopicPartition] in
            if case .revoked(let partitions) = event { return partitions } else { return [] }
        }
        #expect(Set(revoked) == all, "eager: everything was revoked, paused")

        let producer = try KafkaProducer(configuration: producerConfiguration(broker.bootstrapServers))
        for index in 0..<3 {
            try await producer.send(topic: topic, value: bytes("\(index)"), partition: firstOwns.partition)
        }
        try await closeOffPool(producer)
        let received = Mutex<[String]>([])
        _ = try await pollUntil([first, second], timeout: .seconds(15), onRecord: { index, message in
            if index == 0 { received.withLock { $0.append(message.valueString ?? "") } }
        }) { received.withLock { $0.count } >= 3 }
        #expect(received.withLock { $0 } == ["0", "1", "2"], "the partition assigned again must not stay paused")
        try await blocking {
            try second.close()
            try first.close()
        }
    }

    @Test func twoConsumersInOneGroupShareFourPartitions() async throws {
        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let topic = uniqueName("share")
        let group = uniqueName("share-group")
        try await createTopics([(topic, 4)], bootstrap: broker.bootstrapServers)
        let all = Set((0..<4).map { TopicPartition(topic: topic, partition: Int32($0)) })

        let first = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group))
        try first.subscribe(topics: [topic])
        #expect(try await pollUntil([first]) { Set(try first.assignment()) == all })
        _ = first.drainRebalanceEvents()

        let second = try KafkaConsumer(configuration: consumerConfiguration(broker.bootstrapServers, group: group))
        try second.subscribe(topics: [topic])
        let shared = try await pollUntil([first, second], timeout: .seconds(25)) {
            let a = Set(try first.assignment()), b = Set(try second.assignment())
            return !a.isEmpty && !b.isEmpty && a.isDisjoint(with: b) && a.union(b) == all
        }
        try #require(shared)
        let firstOwns = Set(try first.assignment()), secondOwns = Set(try second.assignment())
        // Cooperative-sticky: the first member gave up only the partitions that moved and kept
        // consuming the others; nothing was revoked wholesale.
        let revoked = first.drainRebalanceEvents().flatMap { event -> [TopicPartition] in
            if case .revoked(let partitions) = event { return partitions } else { return [] }
        }
        #expect(Set(revoked) == secondOwns)

        // Every record reaches exactly one member, the one owning its partition.
        let producer = try KafkaProducer(configuration: producerConfiguration(broker.bootstrapServers))
        for index in 0..<8 {
            try await producer.send(topic: topic, value: bytes("\(index)"), partition: Int32(index % 4))
        }
        try await closeOffPool(producer)
        let received = Mutex<[(Int, KafkaMessage)]>([])
        _ = try await pollUntil([first, second], timeout: .seconds(15), onRecord: { index, message in
            received.withLock { $0.append((index, message)) }
        }) { received.withLock { $0.count } >= 8 }
        let records = received.withLock { $0 }
        #expect(records.count == 8)
        #expect(Set(records.compactMap { $0.1.valueString }) == Set((0..<8).map(String.init)))
        for (member, record) in records {
            #expect((member == 0 ? firstOwns : secondOwns).contains(record.topicPartition))
        }
        try await blocking {
            try second.close()
            try first.close()
        }
    }

    /// Creates `topic` (one partition) if needed and sends the numbers in `range` as values.
    private func produceNumbered(_ range: Range<Int>, to topic: String, broker: TansuBroker) async throws {
        try await createTopics([(topic, 1)], bootstrap: broker.bootstrapServers)
        let producer = try KafkaProducer(configuration: producerConfiguration(broker.bootstrapServers))
        for index in range { try await producer.send(topic: topic, value: bytes("\(index)")) }
        try await closeOffPool(producer)
    }
}
