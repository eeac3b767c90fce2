internal import Foundation

/// The daemon's configuration, read once at start from (weakest to strongest) built-in
/// defaults, a JSON config file, `UNIVERSEG_*` environment variables and command-line flags.
///
/// Every key is dotted (`kafka.brokers`); the config file nests them (`{"kafka": {"brokers": ...}}`),
/// the environment upper-cases them with a prefix (`UNIVERSEG_KAFKA_BROKERS`). Unknown keys in
/// the file, malformed values and out-of-range numbers are errors that name the key and where it
/// came from, so a typo stops the process before it consumes anything.
/// Config/universeg-worker.json documents every key with its default.
public struct WorkerConfiguration: Sendable, Equatable {
    public var brokers: String
    public var group: String
    public var requestsTopic: String
    public var resultsTopic: String
    public var metricsTopic: String
    public var dlqTopic: String
    /// Extra librdkafka properties (TLS, SASL, ...), passed through unchanged.
    public var kafkaProperties: [String: String]
    /// librdkafka properties whose values are read from files in $CREDENTIALS_DIRECTORY.
    public var kafkaSecretFiles: [String: String]
    public var storeURL: String
    public var cacheBytes: Int
    /// Weights file; nil means the shipped weights.
    public var weights: String?
    public var maxInFlight: Int
    /// Threads per inference (0 = cores / max_in_flight, at least 1).
    public var threads: Int
    public var drainTimeoutSeconds: Double
    /// Requests fetched and waiting for an executor slot before the partitions are paused
    /// (resumed at half); bounds memory at about max_queued x the largest request.
    public var maxQueued: Int
    /// A request running (or work waiting) longer than this without progress counts as a stalled
    /// executor: the systemd watchdog pings stop and /healthz fails.
    public var stallTimeoutSeconds: Double
    /// Prometheus endpoint ("host:port"); nil when disabled ("off").
    public var metricsAddress: String?
    public var metricsIntervalSeconds: Double
    public var maxImageBytes: Int
    public var maxImagePixels: Int
    /// Minimum log level (trace, debug, info, notice, warning, error, critical).
    public var logLevel: String
    /// DICOMweb servers requests may name (`dicomweb.servers`, `--dicomweb-server NAME=URL`), by name.
    public var dicomwebServers: [String: DICOMwebServerSettings] = [:]
    /// Frames (slices) per DICOM request.
    public var dicomMaxFrames: Int = 512
    /// Bytes of one DICOM instance as fetched.
    public var dicomMaxInstanceBytes: Int = 64 << 20
    /// Bytes of all DICOM instances of one request.
    public var dicomMaxRequestBytes: Int = 256 << 20

    /// Prefix of the flag keys that `--dicomweb-server NAME=URL` produces ("dicomweb.servers.NAME" = URL).
    public static let dicomwebServerFlagPrefix = "dicomweb.servers."

    /// Every key with its default value, as text.
    public static let defaults: [String: String] = [
        "kafka.brokers": "127.0.0.1:9092",
        "kafka.group": "universeg-worker",
        "kafka.requests_topic": "universeg.requests",
        "kafka.results_topic": "universeg.results",
        "kafka.metrics_topic": "universeg.metrics",
        "kafka.dlq_topic": "universeg.requests.dlq",
        "store.url": "file:///var/lib/universeg-worker/support-sets",
        "store.cache_bytes": "536870912",
        "model.weights": "",
        "inference.max_in_flight": "1",
        "inference.threads": "0",
        "inference.drain_timeout_s": "30",
        "inference.stall_timeout_s": "300",
        "inference.max_queued": "8",
        "metrics.address": "127.0.0.1:9464",
        "metrics.interval_s": "15",
        "limits.max_image_bytes": "33554432",
        "limits.max_image_pixels": "40000000",
        "log.level": "info",
        "dicom.max_frames": "512",
        "dicom.max_instance_bytes": "67108864",
        "dicom.max_request_bytes": "268435456",
    ]

    /// Command-line flag for each key that has one.
    public static let flags: [String: String] = [
        "kafka.brokers": "--brokers", "kafka.group": "--group", "store.url": "--store", "model.weights": "--weights",
        "kafka.requests_topic": "--requests-topic", "kafka.results_topic": "--results-topic",
        "kafka.metrics_topic": "--metrics-topic", "kafka.dlq_topic": "--dlq-topic",
        "inference.max_in_flight": "--max-in-flight",
    ]

    public static func environmentName(_ key: String) -> String {
        "UNIVERSEG_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// Builds the configuration.
    /// - file: contents of the JSON config file, if one was given.
    /// - environment: the process environment (only `UNIVERSEG_*` names are read).
    /// - flags: values given on the command line, by key.
    public static func load(file: [UInt8]?, fileName: String = "config file", environment: [String: String],
                            flags: [String: String]) throws -> WorkerConfiguration {
        var values = defaults
        var origin = Dictionary(uniqueKeysWithValues: defaults.keys.map { ($0, "default") })
        var properties: [String: String] = [:], secretFiles: [String: String] = [:]
        var servers: [String: DICOMwebServerSettings] = [:]
        if let file {
            let json: Any
            do {
                json = try JSONSerialization.jsonObject(with: Data(file))
            } catch {
                throw ConfigurationError("\(fileName): not valid JSON")
            }
            guard let root = json as? [String: Any] else { throw ConfigurationError("\(fileName): must be a JSON object") }
            for (section, body) in root {
                guard let fields = body as? [String: Any] else { throw ConfigurationError("\(fileName): '\(section)' must be an object") }
                for (name, value) in fields {
                    let key = "\(section).\(name)"
                    if key == "dicomweb.servers" {
                        guard let map = value as? [String: Any] else {
                            throw ConfigurationError("\(fileName): 'dicomweb.servers' must map server names to objects")
                        }
                        for (serverName, body) in map {
                            servers[serverName] = try DICOMwebServerSettings.parse(name: serverName, body, origin: fileName)
                        }
                        continue
                    }
                    if key == "kafka.properties" || key == "kafka.secret_files" {
                        guard let map = value as? [String: String] else {
                            throw ConfigurationError("\(fileName): '\(key)' must map names to strings")
                        }
                        if key == "kafka.properties" { properties = map } else { secretFiles = map }
                        continue
                    }
                    guard defaults[key] != nil else { throw ConfigurationError("\(fileName): unknown key '\(key)'") }
                    switch value {
                    case let s as String: values[key] = s
                    case let n as NSNumber where String(cString: n.objCType) != "c": values[key] = n.stringValue
                    default: throw ConfigurationError("\(fileName): '\(key)' must be a string or a number")
                    }
                    origin[key] = fileName
                }
            }
        }
        for key in defaults.keys {
            if let v = environment[environmentName(key)] {
                values[key] = v
                origin[key] = "environment variable \(environmentName(key))"
            }
        }
        for (key, v) in flags {
            if key.hasPrefix(dicomwebServerFlagPrefix) {
                let serverName = String(key.dropFirst(dicomwebServerFlagPrefix.count))
                servers[serverName] = try DICOMwebServerSettings.parse(name: serverName, ["url": v], origin: "flag --dicomweb-server")
                continue
            }
            guard defaults[key] != nil else { throw ConfigurationError("unknown configuration key '\(key)'") }
            values[key] = v
            origin[key] = "flag \(Self.flags[key] ?? key)"
        }

        func text(_ key: String) throws -> String {
            let v = values[key] ?? ""
            guard !v.isEmpty else { throw ConfigurationError("\(key) (from \(origin[key] ?? "?")) must not be empty") }
            return v
        }
        func topic(_ key: String) throws -> String {
            let v = try text(key)
            guard v.count <= 249, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
                throw ConfigurationError("\(key) (from \(origin[key] ?? "?")) is not a valid topic name")
            }
            return v
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = Int(values[key] ?? ""), range.contains(v) else {
                throw ConfigurationError("\(key) (from \(origin[key] ?? "?")) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func seconds(_ key: String, _ range: ClosedRange<Double>) throws -> Double {
            guard let v = Double(values[key] ?? ""), v.isFinite, range.contains(v) else {
                throw ConfigurationError("\(key) (from \(origin[key] ?? "?")) must be a number of seconds in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        let topics = try ["kafka.requests_topic", "kafka.results_topic", "kafka.metrics_topic", "kafka.dlq_topic"].map(topic)
        guard Set(topics).count == topics.count else { throw ConfigurationError("the four topics must be different") }
        let store = try text("store.url")
        guard ["file://", "http://", "https://", "/"].contains(where: { store.hasPrefix($0) }) else {
            throw ConfigurationError("store.url (from \(origin["store.url"] ?? "?")) must start with file://, http://, https:// or /")
        }
        let address = try text("metrics.address")
        if address != "off" {
            guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
                  let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
                throw ConfigurationError("metrics.address (from \(origin["metrics.address"] ?? "?")) must be HOST:PORT or off")
            }
        }
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(values["log.level"] ?? "") else {
            throw ConfigurationError("log.level (from \(origin["log.level"] ?? "?")) must be one of \(levels.joined(separator: ", "))")
        }
        var configuration = WorkerConfiguration(
            brokers: try text("kafka.brokers"), group: try text("kafka.group"),
            requestsTopic: topics[0], resultsTopic: topics[1], metricsTopic: topics[2], dlqTopic: topics[3],
            kafkaProperties: properties, kafkaSecretFiles: secretFiles,
            storeURL: store, cacheBytes: try integer("store.cache_bytes", 0...(1 << 40)),
            weights: (values["model.weights"] ?? "").isEmpty ? nil : values["model.weights"],
            maxInFlight: try integer("inference.max_in_flight", 1...64), threads: try integer("inference.threads", 0...256),
            drainTimeoutSeconds: try seconds("inference.drain_timeout_s", 0...3600),
            maxQueued: try integer("inference.max_queued", 1...10000),
            stallTimeoutSeconds: try seconds("inference.stall_timeout_s", 0.5...86400),
            metricsAddress: address == "off" ? nil : address, metricsIntervalSeconds: try seconds("metrics.interval_s", 1...3600),
            maxImageBytes: try integer("limits.max_image_bytes", 1024...(1 << 30)),
            maxImagePixels: try integer("limits.max_image_pixels", 1...(1 << 30)),
            logLevel: values["log.level"] ?? "info")
        configuration.dicomwebServers = servers
        configuration.dicomMaxFrames = try integer("dicom.max_frames", 1...65535)
        configuration.dicomMaxInstanceBytes = try integer("dicom.max_instance_bytes", 1024...(1 << 32))
        configuration.dicomMaxRequestBytes = try integer("dicom.max_request_bytes", 1024...(1 << 36))
        return configuration
    }
}

/// An invalid configuration: one message naming the key and its source.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "invalid configuration: \(message)" }
}

/// One DICOMweb server of the configuration. Secrets are never in the file: they are read from
/// files named by systemd credentials (`$CREDENTIALS_DIRECTORY/NAME`, LoadCredential=).
///
/// `{"url": "https://pacs.example/dicom-web", "bearer_token_credential": "pacs-token"}` or
/// `{"url": ..., "username": "worker", "password_credential": "pacs-password"}`, plus optional
/// `"ca_file"` (PEM) and `"timeout_s"` (default 30).
public struct DICOMwebServerSettings: Sendable, Equatable {
    public var name: String
    public var url: String
    public var bearerTokenCredential: String?
    public var username: String?
    public var passwordCredential: String?
    public var caFile: String?
    public var timeoutSeconds: Double

    static let nameCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

    static func parse(name: String, _ body: Any, origin: String) throws -> DICOMwebServerSettings {
        let at = "dicomweb.servers.\(name) (from \(origin))"
        guard (1...128).contains(name.count), name.allSatisfy({ nameCharacters.contains($0) }) else {
            throw ConfigurationError("DICOMweb server names must be 1-128 characters of [A-Za-z0-9._-] (from \(origin))")
        }
        guard let fields = body as? [String: Any] else { throw ConfigurationError("\(at) must be an object") }
        let known: Set<String> = ["url", "bearer_token_credential", "username", "password_credential", "ca_file", "timeout_s"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError("\(at): unknown key '\(unknown)'")
        }
        func string(_ key: String) throws -> String? {
            guard let value = fields[key] else { return nil }
            guard let text = value as? String, !text.isEmpty else { throw ConfigurationError("\(at): '\(key)' must be a non-empty string") }
            return text
        }
        guard let url = try string("url") else { throw ConfigurationError("\(at): 'url' is required") }
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
            throw ConfigurationError("\(at): url must be an http(s) URL")
        }
        var timeout = 30.0
        if let value = fields["timeout_s"] {
            guard let n = value as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.isFinite,
                  (0.1...3600).contains(n.doubleValue) else {
                throw ConfigurationError("\(at): timeout_s must be a number of seconds in 0.1...3600")
            }
            timeout = n.doubleValue
        }
        let settings = DICOMwebServerSettings(
            name: name, url: url.hasSuffix("/") ? String(url.dropLast()) : url, bearerTokenCredential: try string("bearer_token_credential"),
            username: try string("username"), passwordCredential: try string("password_credential"), caFile: try string("ca_file"),
            timeoutSeconds: timeout)
        if settings.bearerTokenCredential != nil && (settings.username != nil || settings.passwordCredential != nil) {
            throw ConfigurationError("\(at): give a bearer token or basic credentials, not both")
        }
        if (settings.username == nil) != (settings.passwordCredential == nil) {
            throw ConfigurationError("\(at): basic authentication needs both username and password_credential")
        }
        return settings
    }
}
