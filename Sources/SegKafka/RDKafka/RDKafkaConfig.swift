internal import CRdKafka

/// Builds librdkafka configuration objects and client handles from a property map.
enum RDKafkaConfig {
    /// Creates an `rd_kafka_conf_t *` holding `properties` (set in key order). The caller owns it.
    ///
    /// - Throws: ``KafkaError`` (`_INVALID_ARG`, `key` set) for the first unknown property or
    ///   invalid value; for secret keys librdkafka's text (which may quote the value) is replaced.
    static func make(_ properties: [String: String]) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.invalidArgument, "rd_kafka_conf_new failed")
        }
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            var errstr = [CChar](repeating: 0, count: 512)
            let result = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            guard result != RD_KAFKA_CONF_OK else { continue }
            rd_kafka_conf_destroy(conf)
            let detail: String
            if result == RD_KAFKA_CONF_UNKNOWN {
                detail = "unknown configuration property"
            } else if KafkaConfiguration.isSecret(key) {
                detail = "invalid value (not shown: the property is secret)"
            } else {
                detail = decodeErrorBuffer(errstr)
            }
            throw KafkaError(
                .invalidArgument, "configuration property \"\(key)\": \(detail)", isRetriable: false, key: key)
        }
        return conf
    }

    /// Creates a client of `type` from `properties`, letting `configure` install callbacks and
    /// the opaque on the conf first. librdkafka takes the conf on success; it is destroyed here
    /// on failure.
    ///
    /// - Throws: ``KafkaError`` (`_INVALID_ARG`) with librdkafka's reason, secret values removed.
    static func makeHandle(
        _ type: rd_kafka_type_t, properties: [String: String], configure: (OpaquePointer) -> Void
    ) throws -> OpaquePointer {
        let conf = try make(properties)
        configure(conf)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            var reason = decodeErrorBuffer(errstr)
            for (key, value) in properties where KafkaConfiguration.isSecret(key) && value.count >= 3 {
                reason = reason.replacingAll(value, with: "<redacted>")
            }
            throw KafkaError(.invalidArgument, "cannot create Kafka client: \(reason)", isRetriable: false)
        }
        return handle
    }
}

/// The NUL-terminated text in a `char` buffer filled by librdkafka, decoded leniently (invalid
/// UTF-8 becomes U+FFFD; a missing terminator ends the text at the buffer's end).
func decodeErrorBuffer(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// A C string from librdkafka, or `fallback` for NULL.
func decodeCString(_ pointer: UnsafePointer<CChar>?, fallback: String = "") -> String {
    guard let pointer else { return fallback }
    return String(cString: pointer)
}

extension String {
    /// Every occurrence of `target` replaced (standard library only, no Foundation).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}

/// An `rd_kafka_t *`.
///
/// `@unchecked Sendable`: librdkafka documents every `rd_kafka_*` call on a handle as thread-safe
/// except `rd_kafka_destroy`; the owning client (``KafkaConsumer``, ``KafkaProducer``,
/// ``KafkaAdminClient``) calls that exactly once, in its `deinit`, when no other reference to the
/// owner (and hence no concurrent call) can exist, after stopping any thread it started.
struct RDKafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}
