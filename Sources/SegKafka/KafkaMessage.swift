internal import CRdKafka

/// A record returned by ``KafkaConsumer/poll(timeout:)``, or a message-level event.
///
/// When `error` is non-nil the value is an event, not a record: for `_PARTITION_EOF` the
/// topic, partition and offset say which partition reached its end (and at which offset); for
/// other consumer errors they are filled in when librdkafka knows them (`topic` is empty and
/// `partition`/`offset` are -1 otherwise), and `key`/`value` are nil. Bytes from the broker are
/// taken as they are: a null value (a tombstone) is `nil`, never a crash, and no UTF-8 is
/// assumed (use ``valueString``/``keyString`` where text is expected).
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// nil when the record has no key.
    public var key: [UInt8]?
    /// nil for a tombstone (null value); an empty array for an empty, non-null value.
    public var value: [UInt8]?
    /// Headers in record order; names may repeat. A header with a null value has an empty value.
    public var headers: [(String, [UInt8])]
    /// Broker or producer timestamp, when the record has one.
    public var timestamp: KafkaTimestamp?
    /// Set for message-level events and errors (see the type's documentation).
    public var error: KafkaError?

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]? = nil, value: [UInt8]?,
        headers: [(String, [UInt8])] = [], timestamp: KafkaTimestamp? = nil, error: KafkaError? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.error = error
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// True for a record with a null value (a tombstone), false for events and other records.
    public var isTombstone: Bool { error == nil && value == nil }

    /// The value as UTF-8 text; nil for a null value or bytes that are not valid UTF-8.
    public var valueString: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }

    /// The key as UTF-8 text; nil without a key or when it is not valid UTF-8.
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }

    /// The value of the last header called `name`, if any.
    public func header(_ name: String) -> [UInt8]? {
        headers.last { $0.0 == name }?.1
    }
}

/// A record timestamp in milliseconds since the Unix epoch.
public struct KafkaTimestamp: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Set by the producer.
        case createTime
        /// Set by the broker when it appended the record.
        case logAppendTime
    }

    public var millisecondsSinceEpoch: Int64
    public var kind: Kind

    public init(millisecondsSinceEpoch: Int64, kind: Kind) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
        self.kind = kind
    }
}

extension KafkaMessage {
    /// Copies everything out of a consumed `rd_kafka_message_t` (the caller still destroys it).
    /// `handle` is used to look up the underlying fatal error for `_FATAL` events.
    init(copying message: UnsafePointer<rd_kafka_message_t>, handle: OpaquePointer) {
        let raw = message.pointee
        let topic = raw.rkt.map { decodeCString(rd_kafka_topic_name($0)) } ?? ""
        guard raw.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let error: KafkaError
            if raw.err == RD_KAFKA_RESP_ERR__FATAL, let fatal = KafkaError.fatalError(of: handle) {
                error = fatal
            } else {
                // For error events librdkafka puts a NUL-terminated reason in the payload.
                let reason = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? ""
                let code = KafkaError.Code(raw.err)
                error = KafkaError(
                    code, reason.isEmpty ? code.summary : reason, isFatal: raw.err == RD_KAFKA_RESP_ERR__FATAL)
            }
            self.init(topic: topic, partition: raw.partition, offset: raw.offset, value: nil, error: error)
            return
        }
        self.init(
            topic: topic, partition: raw.partition, offset: raw.offset,
            key: Self.bytes(raw.key, raw.key_len), value: Self.bytes(raw.payload, raw.len),
            headers: Self.headers(of: message), timestamp: Self.timestamp(of: message))
    }

    private static func bytes(_ pointer: UnsafeMutableRawPointer?, _ length: Int) -> [UInt8]? {
        guard let pointer else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func headers(of message: UnsafePointer<rd_kafka_message_t>) -> [(String, [UInt8])] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers = list else {
            return []
        }
        var result: [(String, [UInt8])] = []
        var index = 0
        while true {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else {
                break
            }
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            result.append((decodeCString(name), bytes))
            index += 1
        }
        return result
    }

    private static func timestamp(of message: UnsafePointer<rd_kafka_message_t>) -> KafkaTimestamp? {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let milliseconds = rd_kafka_message_timestamp(message, &type)
        switch type {
        case RD_KAFKA_TIMESTAMP_CREATE_TIME:
            return KafkaTimestamp(millisecondsSinceEpoch: milliseconds, kind: .createTime)
        case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
            return KafkaTimestamp(millisecondsSinceEpoch: milliseconds, kind: .logAppendTime)
        default:
            return nil
        }
    }
}
