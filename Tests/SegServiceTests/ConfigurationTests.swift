import Foundation
import SegService
import Testing

@Suite struct ConfigurationTests {
    static var example: [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Config/universeg-worker.json")
        return (try? [UInt8](Data(contentsOf: url))) ?? []
    }

    @Test func documentedExampleEqualsTheDefaults() throws {
        let fromFile = try WorkerConfiguration.load(file: Self.example, environment: [:], flags: [:])
        let defaults = try WorkerConfiguration.load(file: nil, environment: [:], flags: [:])
        #expect(fromFile == defaults)
        #expect(defaults.requestsTopic == "universeg.requests" && defaults.dlqTopic == "universeg.requests.dlq")
        #expect(defaults.weights == nil && defaults.maxInFlight == 1)
    }

    @Test func flagsOverrideEnvironmentOverrideFile() throws {
        let file = Array(#"{"kafka":{"brokers":"file:1","group":"g-file"},"inference":{"max_in_flight":2}}"#.utf8)
        let env = ["UNIVERSEG_KAFKA_BROKERS": "env:1", "UNIVERSEG_INFERENCE_MAX_IN_FLIGHT": "3", "OTHER": "x"]
        let c = try WorkerConfiguration.load(file: file, environment: env, flags: ["kafka.brokers": "flag:1"])
        #expect(c.brokers == "flag:1")
        #expect(c.group == "g-file")
        #expect(c.maxInFlight == 3)
    }

    @Test(arguments: [
        (#"{"kafka":{"brokrs":"x"}}"#, [String: String](), "unknown key 'kafka.brokrs'"),
        (#"{"inference":{"max_in_flight":0}}"#, [:], "inference.max_in_flight"),
        (#"{"kafka":{"results_topic":"universeg.requests"}}"#, [:], "topics must be different"),
        (#"{"store":{"url":"ftp://x"}}"#, [:], "store.url"),
        (#"not json"#, [:], "not valid JSON"),
        ("{}", ["UNIVERSEG_METRICS_ADDRESS": "nowhere"], "environment variable UNIVERSEG_METRICS_ADDRESS"),
        (#"{"kafka":{"requests_topic":"bad topic"}}"#, [:], "kafka.requests_topic"),
    ])
    func invalidConfigurationNamesTheKeyAndSource(file: String, env: [String: String], expected: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration.load(file: Array(file.utf8), fileName: "test.json", environment: env, flags: [:])
        }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
    }

    @Test func passThroughPropertiesAndSecretFiles() throws {
        let file = Array(#"{"kafka":{"properties":{"security.protocol":"SASL_SSL"},"secret_files":{"sasl.password":"kafka-password"}}}"#.utf8)
        let c = try WorkerConfiguration.load(file: file, environment: [:], flags: [:])
        #expect(c.kafkaProperties == ["security.protocol": "SASL_SSL"])
        #expect(c.kafkaSecretFiles == ["sasl.password": "kafka-password"])
    }
}
