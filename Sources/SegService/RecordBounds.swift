/// Size bounds on the records the worker writes for a request.
///
/// A request record may be as large as its producer and the broker allow (librdkafka's
/// `message.max.bytes`, 1,000,000 bytes by default), and its headers are copied onto the result
/// and the dead letter. Without bounds, a request that was just small enough would give a
/// result or dead letter that is too large: its delivery fails, the worker stops, and after a
/// restart the same request comes back (a poison record). So:
///
/// - a result carries the request's headers in order as long as they fit in
///   `maxCopiedHeaderBytes` (names + values); the others are left out and counted in a
///   `universeg.headers.dropped` header;
/// - a dead letter carries the original key, value and every header when the record fits in
///   `maxRecordBytes`; otherwise the headers are bounded as for a result, then left out, then
///   the key, and last the value (each omission is recorded in a `universeg.*.dropped` header
///   with the original size), so a dead letter is always deliverable.
public enum RecordBounds {
    /// librdkafka's default `message.max.bytes`.
    public static let defaultMaxRecordBytes = 1_000_000
    /// At most this many bytes of request headers (names + values) are copied onto a result.
    public static let maxCopiedHeaderBytes = 64 << 10
    /// Per-record and per-header overhead allowance on top of the payload bytes.
    static let recordOverhead = 256
    static let headerOverhead = 12

    public typealias Header = (String, [UInt8])

    /// `message.max.bytes` from the Kafka properties when set, the default otherwise.
    public static func maxRecordBytes(_ properties: [String: String]) -> Int {
        properties["message.max.bytes"].flatMap { Int($0) } ?? defaultMaxRecordBytes
    }

    /// The request headers to copy onto its result (see the type's documentation).
    public static func resultHeaders(_ headers: [Header]) -> [Header] {
        var kept: [Header] = []
        var used = 0, dropped = 0
        for header in headers {
            let size = header.0.utf8.count + header.1.count
            if used + size <= maxCopiedHeaderBytes {
                kept.append(header)
                used += size
            } else {
                dropped += 1
            }
        }
        if dropped > 0 { kept.append(("universeg.headers.dropped", Array(String(dropped).utf8))) }
        return kept
    }

    /// The dead-letter record for a request record: its key, value and headers plus `extra`
    /// (the error and source headers), reduced until it fits in `maxRecordBytes`.
    public static func deadLetter(key: [UInt8]?, value: [UInt8]?, headers: [Header], extra: [Header],
                                  maxRecordBytes: Int = defaultMaxRecordBytes) -> (key: [UInt8]?, value: [UInt8]?, headers: [Header]) {
        var key = key, value = value
        var dropped: [Header] = []
        func fits(_ copied: [Header]) -> Bool {
            size(key: key, value: value, headers: copied + extra + dropped) <= maxRecordBytes
        }
        if fits(headers) { return (key, value, headers + extra) }
        let bounded = resultHeaders(headers)
        if fits(bounded) { return (key, value, bounded + extra) }
        dropped.append(("universeg.headers.dropped", Array(String(headers.count).utf8)))
        if fits([]) { return (key, value, extra + dropped) }
        dropped.append(("universeg.key.dropped", Array(String(key?.count ?? 0).utf8)))
        key = nil
        if fits([]) { return (key, value, extra + dropped) }
        dropped.append(("universeg.value.dropped", Array(String(value?.count ?? 0).utf8)))
        value = nil
        return (key, value, extra + dropped)
    }

    /// A conservative estimate of a record's size as the producer counts it against
    /// `message.max.bytes`.
    public static func size(key: [UInt8]?, value: [UInt8]?, headers: [Header]) -> Int {
        recordOverhead + (key?.count ?? 0) + (value?.count ?? 0)
            + headers.reduce(0) { $0 + headerOverhead + $1.0.utf8.count + $1.1.count }
    }
}
