internal import CRdKafka

/// A failure reported by librdkafka, by a broker through librdkafka, or by this wrapper's own
/// argument checks.
///
/// `code` is librdkafka's name for the `rd_kafka_resp_err_t` value (`rd_kafka_err2name`), such as
/// `_PARTITION_EOF`, `_TIMED_OUT` or `UNKNOWN_TOPIC_OR_PART`; local (client-side) codes start with
/// an underscore. `message` is human-readable and never contains the value of a secret
/// configuration property (see ``KafkaConfiguration/isSecret(_:)``).
///
/// How to act on it: `isFatal` means the client instance is unusable and must
/// be recreated (or the process restarted); `isRetriable` means the same operation may succeed
/// when tried again later; anything else is permanent for that operation.
public struct KafkaError: Error, Hashable, CustomStringConvertible, Sendable {
    /// An `rd_kafka_resp_err_t` name. Extensible: any librdkafka code can appear, the static
    /// members are only the ones this package or its callers test for.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The name as returned by `rd_kafka_err2name`, e.g. `_PARTITION_EOF`.
        public let name: String
        /// The numeric `rd_kafka_resp_err_t` value.
        public let rawValue: Int32

        public static let noError = Code(RD_KAFKA_RESP_ERR_NO_ERROR)
        public static let partitionEOF = Code(RD_KAFKA_RESP_ERR__PARTITION_EOF)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let state = Code(RD_KAFKA_RESP_ERR__STATE)
        public static let noEntry = Code(RD_KAFKA_RESP_ERR__NOENT)
        public static let unknownPartition = Code(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        public static let unknownTopic = Code(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        public static let purgedFromQueue = Code(RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        public static let purgedInFlight = Code(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        public static let destroyed = Code(RD_KAFKA_RESP_ERR__DESTROY)
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)

        init(_ err: rd_kafka_resp_err_t) {
            self.rawValue = err.rawValue
            if let cName = rd_kafka_err2name(err) {
                self.name = String(cString: cName)
            } else {
                self.name = "ERR_\(err.rawValue)"
            }
        }

        /// librdkafka's one-line description of the code (`rd_kafka_err2str`).
        public var summary: String {
            guard let text = rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: rawValue)) else { return name }
            return String(cString: text)
        }

        public var description: String { name }
    }

    public let code: Code
    public let message: String
    /// The client instance can no longer be used (librdkafka fatal error, e.g. idempotent
    /// producer sequence lost); recreate it or restart the process.
    public let isFatal: Bool
    /// The operation may succeed if tried again (timeouts, full queues, leader changes).
    public let isRetriable: Bool
    /// The configuration property at fault, for configuration errors.
    public let key: String?
    /// Where in this package the error was raised (`#fileID:#line`), for diagnostics.
    public let location: String

    /// Creates an error; `isRetriable` defaults to librdkafka's view of the code.
    public init(
        _ code: Code, _ message: String, isFatal: Bool = false, isRetriable: Bool? = nil, key: String? = nil,
        fileID: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable ?? Self.retriableCodes.contains(code.rawValue)
        self.key = key
        self.location = "\(fileID):\(line)"
    }

    public var description: String { "\(code.name): \(message)" }

    /// Codes that a later attempt can clear without intervention: local timeouts and full
    /// queues, transport failures, and the broker errors Kafka itself marks retriable.
    private static let retriableCodes: Set<Int32> = Set(retriableErrors.map(\.rawValue))
    private static let retriableErrors: [rd_kafka_resp_err_t] = [
        RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
        RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__PURGE_QUEUE,
        RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR, RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND,
        RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE,
    ]
}

extension KafkaError {
    /// Wraps a plain `rd_kafka_resp_err_t`; `context` says what was being done.
    static func rdKafka(
        _ err: rd_kafka_resp_err_t, _ context: String, fileID: String = #fileID, line: Int = #line
    ) -> KafkaError {
        let code = Code(err)
        return KafkaError(code, "\(context): \(code.summary)", isFatal: err == RD_KAFKA_RESP_ERR__FATAL,
                          fileID: fileID, line: line)
    }

    /// Takes ownership of an `rd_kafka_error_t *` (destroys it) and keeps its fatal/retriable flags.
    static func consuming(
        _ error: OpaquePointer, _ context: String, fileID: String = #fileID, line: Int = #line
    ) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        let code = Code(rd_kafka_error_code(error))
        let text = rd_kafka_error_string(error).map { String(cString: $0) } ?? code.summary
        return KafkaError(
            code, "\(context): \(text)", isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0, fileID: fileID, line: line)
    }

    /// The instance's fatal error (`rd_kafka_fatal_error`), if one was raised.
    static func fatalError(of handle: OpaquePointer) -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &buffer, buffer.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let text = decodeErrorBuffer(buffer)
        return KafkaError(Code(err), "fatal error: \(text)", isFatal: true, isRetriable: false)
    }
}
