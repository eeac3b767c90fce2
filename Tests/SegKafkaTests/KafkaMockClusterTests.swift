import Foundation
import SegKafka
import SegTesting
import Synchronization
import Testing

/// Fast tests against librdkafka's in-process mock cluster (`test.mock.num.brokers`), no Tansu.
/// The admin client owns the mock cluster; producer and consumer bootstrap from its address.
/// The mock cluster creates topics on first use (several partitions), so these tests produce to
/// partition 0 explicitly.
@Suite(.timeLimit(.minutes(1)))
struct KafkaMockClusterTests {
    /// An admin client hosting a one-broker mock cluster, and that cluster's bootstrap address.
    static func mockCluster() async throws -> (KafkaAdminClient, String) {
        try await blocking {
            let admin = try KafkaAdminClient(configuration: KafkaConfiguration(["test.mock.num.brokers": "1"])) { _ in }
            guard let broker = try admin.metadata(timeout: .seconds(5)).brokers.first else {
                throw KafkaError(.allBrokersDown, "the mock cluster reported no broker")
            }
            return (admin, "\(broker.host):\(broker.port)")
        }
    }

    @Test func roundTripOnMockCluster() async throws {
        let (admin, bootstrap) = try await Self.mockCluster()
        defer { withExtendedLifetime(admin) {} }
        let topic = uniqueName("mock")
        let producer = try KafkaProducer(configuration: producerConfiguration(bootstrap))
        let sent: [([UInt8]?, [UInt8]?)] = [
            (bytes("a"), bytes("first")), (nil, []), (bytes("t"), nil), (nil, [0xC3, 0x28, 0xFF]),
        ]
        var reports: [KafkaDeliveryReport] = []
        for (key, value) in sent {
            reports.append(try await producer.send(
                topic: topic, key: key, value: value, headers: [("h", [1, 2])], partition: 0))
        }
        #expect(reports.map(\.offset) == [0, 1, 2, 3])
        #expect(reports.allSatisfy { $0.topic == topic && $0.partition == 0 })
        try await closeOffPool(producer)

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(
            bootstrap, group: uniqueName("mock-group"), ["enable.partition.eof": "true"]))
        try consumer.subscribe(topics: [topic])
        let records = try await collect(consumer, count: sent.count, timeout: .seconds(20))
        try #require(records.count == sent.count)
        #expect(records.map(\.key) == sent.map(\.0))
        #expect(records.map(\.value) == sent.map(\.1))
        #expect(records[1].value == [] && !records[1].isTombstone)   // empty is not null
        #expect(records[2].isTombstone && records[2].valueString == nil)
        #expect(records[3].valueString == nil)                         // not UTF-8: no crash, no text
        #expect(records[0].valueString == "first" && records[0].keyString == "a")
        #expect(records.allSatisfy { $0.header("h") == [1, 2] && $0.timestamp != nil })

        // Reaching the end of a partition is an event value, not an error thrown or a crash.
        let eof = try await blocking { () -> KafkaMessage? in
            for _ in 0..<100 {
                if let message = consumer.poll(timeout: .milliseconds(100)), message.error != nil,
                   message.partition == 0 { return message }
            }
            return nil
        }
        let eofError = try #require(eof?.error)
        #expect(eofError.code == .partitionEOF && !eofError.isFatal)
        #expect(eof?.topic == topic && eof?.offset == 4)

        // Storing an offset for a partition this consumer does not own fails cleanly.
        #expect(throws: KafkaError.self) { try consumer.storeOffset(topic: topic, partition: 97, offset: 0) }
        #expect(throws: KafkaError.self) { try consumer.storeOffset(topic: topic, partition: 0, offset: -5) }
        try await closeOffPool(consumer)
        #expect(consumer.poll(timeout: .milliseconds(10)) == nil)
        #expect(throws: KafkaError.self) { try consumer.commitSync() }
    }

    @Test func statisticsReportConsumerLag() async throws {
        let (admin, bootstrap) = try await Self.mockCluster()
        defer { withExtendedLifetime(admin) {} }
        let topic = uniqueName("mock-stats")
        let producer = try KafkaProducer(configuration: producerConfiguration(bootstrap))
        for index in 0..<5 { try await producer.send(topic: topic, value: bytes("\(index)"), partition: 0) }
        try await closeOffPool(producer)

        let consumer = try KafkaConsumer(configuration: consumerConfiguration(
            bootstrap, group: uniqueName("mock-stats"), ["statistics.interval.ms": "100"]))
        try consumer.subscribe(topics: [topic])
        let records = try await collect(consumer, count: 5)
        try #require(records.count == 5)
        try consumer.storeOffset(for: records[1])              // stores and then commits offset 2
        let partition = TopicPartition(topic: topic, partition: 0)
        let committed = try await blocking {
            try consumer.commitSync()
            return try consumer.committedOffsets(for: [partition])
        }
        #expect(committed == [partition: 2])
        let lagSeen = try await pollUntil([consumer], timeout: .seconds(10)) {
            consumer.statistics()?.consumerLag[partition] == 3
        }
        #expect(lagSeen, "last statistics: \(consumer.statistics()?.json.prefix(300) ?? "none")")
        try await closeOffPool(consumer)
    }

    @Test func completionVariantReportsDeliveryOnce() async throws {
        let (admin, bootstrap) = try await Self.mockCluster()
        defer { withExtendedLifetime(admin) {} }
        let topic = uniqueName("mock-completion")
        let producer = try KafkaProducer(configuration: producerConfiguration(bootstrap))
        let results = Mutex<[Result<KafkaDeliveryReport, KafkaError>]>([])
        for index in 0..<10 {
            try producer.send(topic: topic, key: bytes("k\(index)"), value: bytes("v"), partition: Int32(index % 2)) {
                result in results.withLock { $0.append(result) }
            }
        }
        try await blocking { try producer.flush(timeout: .seconds(10)) }
        let delivered = results.withLock { $0 }
        #expect(delivered.count == 10)
        let reports = delivered.compactMap { try? $0.get() }
        #expect(reports.count == 10)
        #expect(Set(reports.map(\.partition)) == [0, 1])
        #expect(producer.outstandingCount == 0)
        try await closeOffPool(producer)
        #expect(throws: KafkaError.self) { try producer.send(topic: topic, value: nil) { _ in } }
    }

    // MARK: No broker at all

    @Test func sendFailsWithDeliveryErrorWhenNoBrokerAcknowledges() async throws {
        let producer = try KafkaProducer(
            configuration: producerConfiguration(Self.deadBroker, ["message.timeout.ms": "300"])) { _ in }
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(topic: uniqueName("nobody"), value: bytes("lost"))
        }
        #expect(error?.code == .messageTimedOut && error?.isRetriable == true && error?.isFatal == false)
        try await closeOffPool(producer)
    }

    @Test func closePurgesUnacknowledgedSendsAndNeverLeavesOneWaiting() async throws {
        let producer = try KafkaProducer(configuration: producerConfiguration(
            Self.deadBroker, ["queue.buffering.max.messages": "1", "message.timeout.ms": "60000"])) { _ in }
        let topic = uniqueName("purge")
        let first = Mutex<Result<KafkaDeliveryReport, KafkaError>?>(nil)
        try producer.send(topic: topic, value: bytes("1")) { result in first.withLock { $0 = result } }
        // The local queue holds one record, so this send waits for room (retrying _QUEUE_FULL).
        let second = Task { try await producer.send(topic: topic, value: bytes("2")) }
        try await Task.sleep(for: .milliseconds(200))
        let closeError = await #expect(throws: KafkaError.self) {
            try await closeOffPool(producer, timeout: .milliseconds(300))
        }
        #expect(closeError?.code == .timedOut)
        let firstResult = try #require(first.withLock { $0 })
        #expect(throws: KafkaError.self) { try firstResult.get() }
        let secondError = await #expect(throws: KafkaError.self) { try await second.value }
        #expect(secondError?.code == .state)
    }

    /// A loopback port nothing listens on.
    static let deadBroker = "127.0.0.1:1"
}
