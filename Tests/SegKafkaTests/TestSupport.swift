import Dispatch
import SegTesting
import Foundation
import SegKafka
import Testing

/// A name unique to this test run, e.g. `roundtrip-1a2b3c4d`.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Consumer settings for tests: a short session timeout (Tansu's group joins take about
/// session.timeout.ms / 2), earliest start, and fast heartbeats.
func consumerConfiguration(_ bootstrap: String, group: String, _ extra: [String: String] = [:]) -> KafkaConfiguration {
    var configuration = KafkaConfiguration(bootstrapServers: [bootstrap], [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "500",
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": "100",
        "topic.metadata.refresh.interval.ms": "1000",
    ])
    configuration.groupID = group
    configuration.clientID = group
    configuration.merge(extra)
    return configuration
}

func producerConfiguration(_ bootstrap: String, _ extra: [String: String] = [:]) -> KafkaConfiguration {
    var configuration = KafkaConfiguration(bootstrapServers: [bootstrap], ["linger.ms": "1"])
    configuration.merge(extra)
    return configuration
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Polls `consumer` until `count` records (not events) arrived or `timeout` passed; also polls
/// for `settle` afterwards to catch any record beyond `count`. Returns the records in order.
func collect(
    _ consumer: KafkaConsumer, count: Int, timeout: Duration = .seconds(20), settle: Duration = .zero
) async throws -> [KafkaMessage] {
    try await blocking {
        var records: [KafkaMessage] = []
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while records.count < count, clock.now < deadline {
            if let message = consumer.poll(timeout: .milliseconds(100)), message.error == nil {
                records.append(message)
            }
        }
        let settleEnd = clock.now + settle
        while clock.now < settleEnd {
            if let message = consumer.poll(timeout: .milliseconds(100)), message.error == nil {
                records.append(message)
            }
        }
        return records
    }
}

/// Polls every consumer in turn (so all of them take part in rebalances) until `condition` holds
/// or `timeout` passes; returns whether it held. Records that arrive are handed to `onRecord`.
func pollUntil(
    _ consumers: [KafkaConsumer], timeout: Duration = .seconds(20),
    onRecord: @escaping @Sendable (Int, KafkaMessage) -> Void = { _, _ in },
    _ condition: @escaping @Sendable () throws -> Bool
) async throws -> Bool {
    try await blocking {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            for (index, consumer) in consumers.enumerated() {
                if let message = consumer.poll(timeout: .milliseconds(50)), message.error == nil {
                    onRecord(index, message)
                }
            }
            if try condition() { return true }
        }
        return try condition()
    }
}

/// Creates topics through a short-lived admin client, off the cooperative pool.
func createTopics(_ topics: [(String, Int32)], bootstrap: String) async throws {
    try await blocking {
        let admin = try KafkaAdminClient(configuration: KafkaConfiguration(bootstrapServers: [bootstrap]))
        try admin.createTopics(topics.map { (name: $0.0, partitions: $0.1) })
    }
}

/// Closes (leaves the group, commits) off the cooperative pool.
func closeOffPool(_ consumer: KafkaConsumer) async throws {
    try await blocking { try consumer.close() }
}

/// Flushes (up to `timeout`) and closes off the cooperative pool.
func closeOffPool(_ producer: KafkaProducer, timeout: Duration = .seconds(10)) async throws {
    try await blocking { try producer.close(timeout: timeout) }
}

extension TansuBroker {
    static var skipReason: Comment { Comment(rawValue: skipReasonText) }
}
