internal import CRdKafka

/// The version of the librdkafka loaded at run time (`rd_kafka_version_str()`), e.g. `2.16.0`.
/// It may differ from the headers the package was compiled against (Debian's 2.0.2).
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// The loaded librdkafka's version as `0xMMmmrrxx` (`rd_kafka_version()`), for comparisons.
public var librdkafkaVersionNumber: Int { Int(rd_kafka_version()) }

/// One line of librdkafka's own logging, passed to a client's `logHandler`.
public struct KafkaLogRecord: Sendable {
    /// syslog severity: 0 emergency … 3 error, 4 warning, 5 notice, 6 info, 7 debug.
    public let level: Int32
    /// librdkafka's facility, e.g. `FAIL`, `CGRPOP`, `REQTMOUT`.
    public let facility: String
    public let message: String
}
