internal import Foundation
public import SegKafka
public import SegService

/// One record the worker produces.
public struct OutgoingRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [(String, [UInt8])]
}

/// The per-request record on the metrics topic (schema universeg.metrics.v1, type "request"):
/// outcome, error code, Dice when ground truth was given, foreground fraction, stage timings,
/// support set, source coordinates.
public struct RequestMetricsRecord: Codable, Sendable, Equatable {
    public struct SupportSet: Codable, Sendable, Equatable {
        public var id: String
        public var version: String
        public var sizeUsed: Int
        enum CodingKeys: String, CodingKey { case id, version, sizeUsed = "size_used" }
    }

    public var schema = "universeg.metrics.v1"
    public var type = "request"
    public var worker: String
    public var replay: Bool
    public var timeMs: Int64
    public var requestID: String?
    public var status: String
    public var errorCode: String?
    public var dice: Double?
    public var foregroundFraction: Double?
    public var timingsMs: SegmentationResult.Timings?
    public var supportSet: SupportSet?
    public var source: SegmentationResult.Source?

    enum CodingKeys: String, CodingKey {
        case schema, type, worker, replay, timeMs = "time_ms", requestID = "request_id", status, errorCode = "error_code"
        case dice, foregroundFraction = "foreground_fraction", timingsMs = "timings_ms", supportSet = "support_set", source
    }
}

/// What a finished request produces, as pure data: the result record (results topic, key =
/// request_id, the request's headers copied within bounds), the dead-letter record for a failed
/// request (original key, value and headers plus universeg.error.* and universeg.source.*), and
/// the per-request metrics record. The worker sends them and stores the offset once all are
/// acknowledged.
public enum OutgoingRecords {
    public struct Topics: Sendable, Equatable {
        public var results: String
        public var deadLetters: String
        public var metrics: String
        public init(results: String, deadLetters: String, metrics: String) {
            self.results = results
            self.deadLetters = deadLetters
            self.metrics = metrics
        }
    }

    /// The records of `outcome` for the request record `message`. A transient outcome has none.
    public static func make(_ outcome: RequestProcessor.Outcome, for message: KafkaMessage, topics: Topics, maxRecordBytes: Int,
                            worker: String, replay: Bool, timeMs: Int64) -> [OutgoingRecord] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var records: [OutgoingRecord] = []
        switch outcome {
        case .unavailable:
            return []
        case .ok(let id, let result):
            if let json = try? encoder.encode(result) {
                records.append(OutgoingRecord(topic: topics.results, key: Array(id.utf8), value: [UInt8](json),
                                              headers: RecordBounds.resultHeaders(message.headers)))
            }
        case .failed(let id, let result, let error):
            if let id, let result, let json = try? encoder.encode(result) {
                records.append(OutgoingRecord(topic: topics.results, key: Array(id.utf8), value: [UInt8](json),
                                              headers: RecordBounds.resultHeaders(message.headers)))
            }
            let extra: [(String, [UInt8])] = [
                ("universeg.error.code", Array(error.code.rawValue.utf8)),
                ("universeg.error.reason", Array(error.reason.utf8)),
                ("universeg.source.topic", Array(message.topic.utf8)),
                ("universeg.source.partition", Array(String(message.partition).utf8)),
                ("universeg.source.offset", Array(String(message.offset).utf8)),
            ]
            let dead = RecordBounds.deadLetter(key: message.key, value: message.value, headers: message.headers, extra: extra,
                                               maxRecordBytes: maxRecordBytes)
            records.append(OutgoingRecord(topic: topics.deadLetters, key: dead.key, value: dead.value, headers: dead.headers))
        }
        if let metrics = metricsRecord(outcome, worker: worker, replay: replay, timeMs: timeMs),
           let json = try? encoder.encode(metrics) {
            records.append(OutgoingRecord(topic: topics.metrics, key: outcome.requestID.map { Array($0.utf8) }, value: [UInt8](json),
                                          headers: []))
        }
        return records
    }

    /// The metrics record of an outcome (nil for a transient one, which is not finished).
    public static func metricsRecord(_ outcome: RequestProcessor.Outcome, worker: String, replay: Bool,
                                     timeMs: Int64) -> RequestMetricsRecord? {
        switch outcome {
        case .unavailable:
            return nil
        case .ok(let id, let result):
            return RequestMetricsRecord(
                worker: worker, replay: replay, timeMs: timeMs, requestID: id, status: "ok", errorCode: nil, dice: result.dice,
                foregroundFraction: result.foregroundFraction, timingsMs: result.timingsMs,
                supportSet: result.supportSet.map { .init(id: $0.id, version: $0.version, sizeUsed: $0.sizeUsed) },
                source: result.source)
        case .failed(let id, let result, let error):
            return RequestMetricsRecord(
                worker: worker, replay: replay, timeMs: timeMs, requestID: id, status: "error", errorCode: error.code.rawValue,
                dice: nil, foregroundFraction: nil, timingsMs: nil, supportSet: nil, source: result?.source)
        }
    }
}
