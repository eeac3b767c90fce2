internal import CRdKafka

/// librdkafka properties for one client (consumer, producer or admin), as the `[String: String]`
/// map librdkafka itself takes (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md).
///
/// Any property can be passed through, including TLS and SASL settings; the typed accessors below
/// only cover the keys the worker sets itself. Values are checked by librdkafka when a client is
/// created, or earlier with ``validate()``: an unknown key or an invalid value throws a
/// ``KafkaError`` whose `key` names the property. Secret values (``isSecret(_:)``) never appear in
/// errors or in `description`.
///
/// Read secrets from files with ``setFromFile(_:path:)`` or, under systemd's `LoadCredential=`,
/// with ``setFromCredential(_:name:environment:)``.
public struct KafkaConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// The raw properties, keyed by librdkafka property name.
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    /// A configuration with `bootstrap.servers` set.
    public init(bootstrapServers: [String], _ properties: [String: String] = [:]) {
        self.properties = properties
        self.bootstrapServers = bootstrapServers
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Adds `other`'s properties, replacing existing keys.
    public mutating func merge(_ other: [String: String]) {
        properties.merge(other) { _, new in new }
    }

    // MARK: Typed accessors

    /// `bootstrap.servers`: initial brokers as `host:port` (empty when unset).
    public var bootstrapServers: [String] {
        get {
            (properties["bootstrap.servers"] ?? "").split(separator: ",")
                .map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        }
        set { properties["bootstrap.servers"] = newValue.isEmpty ? nil : newValue.joined(separator: ",") }
    }

    /// `client.id`: shown in broker logs and metrics.
    public var clientID: String? {
        get { properties["client.id"] }
        set { properties["client.id"] = newValue }
    }

    /// `group.id`: the consumer group (required by ``KafkaConsumer``).
    public var groupID: String? {
        get { properties["group.id"] }
        set { properties["group.id"] = newValue }
    }

    /// `session.timeout.ms` (librdkafka default 45 s): a member silent this long is evicted.
    public var sessionTimeout: Duration? {
        get { duration("session.timeout.ms") }
        set { setDuration("session.timeout.ms", newValue) }
    }

    /// `max.poll.interval.ms` (default 300 s): the longest allowed gap between two
    /// ``KafkaConsumer/poll(timeout:)`` calls before the consumer leaves the group.
    public var maxPollInterval: Duration? {
        get { duration("max.poll.interval.ms") }
        set { setDuration("max.poll.interval.ms", newValue) }
    }

    /// `statistics.interval.ms` (default 0 = off): how often librdkafka emits statistics JSON.
    public var statisticsInterval: Duration? {
        get { duration("statistics.interval.ms") }
        set { setDuration("statistics.interval.ms", newValue) }
    }

    /// `auto.commit.interval.ms` (default 5 s): how often stored offsets are committed.
    public var autoCommitInterval: Duration? {
        get { duration("auto.commit.interval.ms") }
        set { setDuration("auto.commit.interval.ms", newValue) }
    }

    /// `message.timeout.ms` (producer, default 300 s): how long a record may wait for its
    /// acknowledgement before its delivery report fails with `_MSG_TIMED_OUT`.
    public var messageTimeout: Duration? {
        get { duration("message.timeout.ms") }
        set { setDuration("message.timeout.ms", newValue) }
    }

    /// Where a consumer group without a committed offset starts.
    public enum AutoOffsetReset: String, Sendable {
        case earliest, latest, error
    }

    /// `auto.offset.reset` (default `latest`).
    public var autoOffsetReset: AutoOffsetReset? {
        get { properties["auto.offset.reset"].flatMap(AutoOffsetReset.init(rawValue:)) }
        set { properties["auto.offset.reset"] = newValue?.rawValue }
    }

    /// `enable.partition.eof` (default false): emit a `_PARTITION_EOF` message-level event each
    /// time the consumer reaches the end of a partition.
    public var enablePartitionEOF: Bool? {
        get { properties["enable.partition.eof"].map { $0 == "true" } }
        set { properties["enable.partition.eof"] = newValue.map { $0 ? "true" : "false" } }
    }

    private func duration(_ key: String) -> Duration? {
        properties[key].flatMap { Int64($0) }.map { Duration.milliseconds($0) }
    }

    private mutating func setDuration(_ key: String, _ value: Duration?) {
        properties[key] = value.map { String(milliseconds($0)) }
    }

    // MARK: Secrets

    /// Whether `key` names a secret: its value is never shown in errors or descriptions. True for
    /// keys containing `password`, `secret`, `sasl` or `ssl.key` (case-insensitive).
    public static func isSecret(_ key: String) -> Bool {
        let lowered = key.lowercased()
        return ["password", "secret", "sasl", "ssl.key"].contains { lowered.contains($0) }
    }

    /// The properties with secret values replaced by `<redacted>`.
    public var redactedProperties: [String: String] {
        var result = properties
        for key in result.keys where Self.isSecret(key) { result[key] = "<redacted>" }
        return result
    }

    public var description: String {
        let items = redactedProperties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return "KafkaConfiguration(\(items.joined(separator: ", ")))"
    }

    // MARK: Validation

    /// Checks every property with librdkafka (`rd_kafka_conf_set`), without creating a client.
    ///
    /// - Throws: ``KafkaError`` with code `_INVALID_ARG` and `key` set to the first (in key order)
    ///   unknown property or invalid value. Cross-property conflicts are only detected when a
    ///   client is created.
    public func validate() throws {
        let conf = try RDKafkaConfig.make(properties)
        rd_kafka_conf_destroy(conf)
    }
}

/// A duration in whole milliseconds, clamped to `0...Int32.max` (librdkafka's timeout range).
func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 { return 0 }
    if seconds >= Int64(Int32.max) / 1000 { return Int32.max }
    let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return Int32(clamping: max(0, total))
}
