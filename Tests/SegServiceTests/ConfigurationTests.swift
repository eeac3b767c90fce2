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

@Suite struct DICOMwebConfigurationTests {
    @Test func serversComeFromTheFileAndFromFlags() throws {
        let file = Array(#"""
            {"dicomweb": {"servers": {"pacs": {"url": "https://pacs.example/dicom-web/", "bearer_token_credential": "pacs-token",
                                               "ca_file": "/etc/ssl/pacs.pem", "timeout_s": 5},
                                      "research": {"url": "http://10.0.0.9:8042/dicom-web", "username": "w", "password_credential": "pw"}}},
             "dicom": {"max_frames": 64}}
            """#.utf8)
        let c = try WorkerConfiguration.load(file: file, environment: [:], flags: ["dicomweb.servers.local": "http://127.0.0.1:8042/dicom-web"])
        #expect(c.dicomwebServers.keys.sorted() == ["local", "pacs", "research"])
        let pacs = try #require(c.dicomwebServers["pacs"])
        #expect(pacs.url == "https://pacs.example/dicom-web" && pacs.bearerTokenCredential == "pacs-token")
        #expect(pacs.caFile == "/etc/ssl/pacs.pem" && pacs.timeoutSeconds == 5)
        #expect(c.dicomwebServers["research"]?.passwordCredential == "pw")
        #expect(c.dicomwebServers["local"]?.timeoutSeconds == 30)
        #expect(c.dicomMaxFrames == 64 && c.dicomMaxInstanceBytes == 64 << 20)
    }

    @Test(arguments: [
        (#"{"dicomweb":{"servers":{"p":{"url":"ftp://x"}}}}"#, "url must be an http(s) URL"),
        (#"{"dicomweb":{"servers":{"p":{}}}}"#, "'url' is required"),
        (#"{"dicomweb":{"servers":{"p":{"url":"http://x","token":"secret"}}}}"#, "unknown key 'token'"),
        (#"{"dicomweb":{"servers":{"p":{"url":"http://x","username":"u"}}}}"#, "needs both username and password_credential"),
        (#"{"dicomweb":{"servers":{"p":{"url":"http://x","username":"u","password_credential":"a","bearer_token_credential":"b"}}}}"#, "not both"),
        (#"{"dicomweb":{"servers":{"bad/name":{"url":"http://x"}}}}"#, "server names"),
        (#"{"dicomweb":{"servers":[]}}"#, "must map server names"),
        (#"{"dicomweb":{"servers":{"p":{"url":"http://x","timeout_s":0}}}}"#, "timeout_s"),
        (#"{"dicom":{"max_frames":0}}"#, "dicom.max_frames"),
    ])
    func invalidServersNameTheProblem(file: String, expected: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration.load(file: Array(file.utf8), fileName: "test.json", environment: [:], flags: [:])
        }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
    }

    @Test func aMalformedFlagIsRefused() {
        #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration.load(file: nil, environment: [:], flags: ["dicomweb.servers.": "pacs"])
        }
    }
}
