import Foundation
@testable import SegKafka
import Synchronization
import Testing

@Suite struct KafkaConfigurationTests {
    @Test func unknownPropertyThrowsErrorNamingTheKey() throws {
        let configuration = KafkaConfiguration(["bootstrap.servers": "127.0.0.1:1", "no.such.property": "1"])
        let error = try #require(throws: KafkaError.self) { try configuration.validate() }
        #expect(error.code == .invalidArgument)
        #expect(error.key == "no.such.property")
        #expect(error.message.contains("no.such.property"))
        #expect(!error.isRetriable && !error.isFatal)
        // Client constructors validate the same way.
        var consumerConfiguration = configuration
        consumerConfiguration.groupID = "g"
        let consumerError = try #require(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: consumerConfiguration)
        }
        #expect(consumerError.key == "no.such.property")
        let producerError = try #require(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: configuration)
        }
        #expect(producerError.key == "no.such.property")
    }

    @Test func invalidValueIsReportedWithLibrdkafkasReason() throws {
        let configuration = KafkaConfiguration(["session.timeout.ms": "soon"])
        let error = try #require(throws: KafkaError.self) { try configuration.validate() }
        #expect(error.key == "session.timeout.ms")
        #expect(error.message.contains("session.timeout.ms"))
    }

    @Test func secretValuesNeverAppearInErrorsOrDescriptions() throws {
        let secret = "hunter2-very-secret"
        // An enum-valued SASL property: librdkafka rejects the value (and would quote it).
        let configuration = KafkaConfiguration(["sasl.oauthbearer.method": secret, "sasl.password": secret])
        let error = try #require(throws: KafkaError.self) { try configuration.validate() }
        #expect(error.key == "sasl.oauthbearer.method")
        #expect(!error.message.contains(secret))
        #expect(!"\(error)".contains(secret))
        #expect(!configuration.description.contains(secret))
        #expect(configuration.redactedProperties["sasl.password"] == "<redacted>")
        for key in ["sasl.password", "ssl.key.password", "ssl.key.pem", "sasl.oauthbearer.client.secret",
                    "ssl.keystore.password", "SASL.USERNAME"] {
            #expect(KafkaConfiguration.isSecret(key), "\(key)")
        }
        for key in ["bootstrap.servers", "group.id", "ssl.ca.location", "session.timeout.ms"] {
            #expect(!KafkaConfiguration.isSecret(key), "\(key)")
        }
    }

    @Test func consumerRequiresGroupAndManualOffsetStore() throws {
        let noGroup = try #require(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"]))
        }
        #expect(noGroup.key == "group.id")
        var autoStore = KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"], ["enable.auto.offset.store": "true"])
        autoStore.groupID = "g"
        let autoStoreError = try #require(throws: KafkaError.self) { _ = try KafkaConsumer(configuration: autoStore) }
        #expect(autoStoreError.key == "enable.auto.offset.store")
        let notIdempotent = try #require(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: KafkaConfiguration(["enable.idempotence": "false"]))
        }
        #expect(notIdempotent.key == "enable.idempotence")
    }

    @Test func consumerDefaultsAreCooperativeStickyWithManualStore() throws {
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:1"])
        configuration.groupID = uniqueName("defaults")
        let lines = Mutex(0)
        let consumer = try KafkaConsumer(configuration: configuration) { _ in lines.withLock { $0 += 1 } }
        defer { try? consumer.close() }
        #expect(consumer.configuration["partition.assignment.strategy"] == "cooperative-sticky")
        #expect(consumer.configuration["enable.auto.offset.store"] == "false")
        #expect(consumer.configuration["enable.auto.commit"] == "true")
    }

    @Test func typedAccessorsRoundTrip() {
        var configuration = KafkaConfiguration()
        configuration.bootstrapServers = ["a:1", " b:2 "]
        configuration.sessionTimeout = .seconds(6)
        configuration.statisticsInterval = .milliseconds(250)
        configuration.autoOffsetReset = .earliest
        configuration.enablePartitionEOF = true
        #expect(configuration["bootstrap.servers"] == "a:1, b:2 ")
        #expect(configuration.bootstrapServers == ["a:1", "b:2"])
        #expect(configuration["session.timeout.ms"] == "6000")
        #expect(configuration.sessionTimeout == .seconds(6))
        #expect(configuration["statistics.interval.ms"] == "250")
        #expect(configuration.autoOffsetReset == .earliest)
        #expect(configuration["enable.partition.eof"] == "true")
    }

    @Test func credentialsAreReadFromTheCredentialsDirectory() throws {
        let directory = NSTemporaryDirectory() + uniqueName("credentials")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "s3cret\n".write(toFile: directory + "/kafka-password", atomically: true, encoding: .utf8)
        try "line1\nline2\r\n".write(toFile: directory + "/pem", atomically: true, encoding: .utf8)
        var configuration = KafkaConfiguration()
        let environment = ["CREDENTIALS_DIRECTORY": directory]
        try configuration.setFromCredential("sasl.password", name: "kafka-password", environment: environment)
        try configuration.setFromCredential("ssl.key.pem", name: "pem", environment: environment)
        #expect(configuration["sasl.password"] == "s3cret")
        #expect(configuration["ssl.key.pem"] == "line1\nline2")

        let missing = try #require(throws: KafkaError.self) {
            try configuration.setFromCredential("sasl.username", name: "absent", environment: environment)
        }
        #expect(missing.code == .noEntry && missing.key == "sasl.username")
        let traversal = try #require(throws: KafkaError.self) {
            try configuration.setFromCredential("sasl.username", name: "../etc/passwd", environment: environment)
        }
        #expect(traversal.code == .invalidArgument)
        let unset = try #require(throws: KafkaError.self) {
            try configuration.setFromCredential("sasl.username", name: "kafka-password", environment: [:])
        }
        #expect(unset.message.contains("CREDENTIALS_DIRECTORY"))
    }

    @Test func durationsAreClampedToLibrdkafkaMilliseconds() {
        #expect(milliseconds(.milliseconds(1500)) == 1500)
        #expect(milliseconds(.microseconds(999)) == 0)
        #expect(milliseconds(.seconds(-5)) == 0)
        #expect(milliseconds(.seconds(Int64.max)) == Int32.max)
    }

    @Test func versionIsTheLoadedLibrary() {
        #expect(!librdkafkaVersion.isEmpty)
        #expect(librdkafkaVersionNumber > 0x0200_0000)
    }
}

@Suite struct KafkaStatisticsTests {
    @Test func parsesPerPartitionConsumerLag() {
        let json = """
            {"name":"c#consumer-1","type":"consumer","ts":123456,"topics":{"requests":{"topic":"requests",
            "partitions":{"0":{"partition":0,"consumer_lag":7,"consumer_lag_stored":5,"committed_offset":3,
            "stored_offset":5,"hi_offset":10},"1":{"partition":1,"consumer_lag":-1,"consumer_lag_stored":-1,
            "committed_offset":-1001,"stored_offset":-1001,"hi_offset":-1},"-1":{"partition":-1,"consumer_lag":-1}}}}}
            """
        let statistics = KafkaStatistics(json: json)
        #expect(statistics.json == json)
        #expect(statistics.timestampMicroseconds == 123_456)
        #expect(statistics.consumerLag == [TopicPartition(topic: "requests", partition: 0): 7])
        #expect(statistics.totalConsumerLag == 7)
        let partition0 = statistics.partitions[TopicPartition(topic: "requests", partition: 0)]
        #expect(partition0?.consumerLagStored == 5)
        #expect(partition0?.highWatermark == 10)
        #expect(statistics.partitions.count == 2)
    }

    @Test func malformedStatisticsGiveNoPartitions() {
        #expect(KafkaStatistics(json: "not json").partitions.isEmpty)
        #expect(KafkaStatistics(json: #"{"topics": [1, 2]}"#).partitions.isEmpty)
    }
}

@Suite struct KafkaStatisticsBrokerTests {
    static func document(_ states: [(String, String)]) -> String {
        let brokers = states.enumerated().map { i, pair in #""b\#(i)": {"source": "\#(pair.0)", "state": "\#(pair.1)"}"# }
        return #"{"ts": 1, "brokers": {\#(brokers.joined(separator: ", "))}, "topics": {}}"#
    }

    @Test func reachabilityFollowsTheBrokerStates() {
        #expect(KafkaStatistics(json: Self.document([("configured", "UP"), ("logical", "INIT")])).brokersReachable == true)
        #expect(KafkaStatistics(json: Self.document([("configured", "TRY_CONNECT"), ("internal", "UP")])).brokersReachable == false)
        #expect(KafkaStatistics(json: Self.document([("configured", "INIT")])).brokersReachable == nil, "not tried yet")
        #expect(KafkaStatistics(json: Self.document([("learned", "DOWN"), ("learned", "UP")])).brokersUp == 1)
        #expect(KafkaStatistics(json: #"{"ts": 1}"#).brokersReachable == nil)
    }
}
