import Foundation
import SegDaemon
import SegKafka
@testable import SegService
import Testing

@Suite struct OutgoingRecordsTests {
    let topics = OutgoingRecords.Topics(results: "res", deadLetters: "dlq", metrics: "met")
    let message = KafkaMessage(topic: "req", partition: 2, offset: 41, key: Array("k".utf8), value: Array(#"{"x":1}"#.utf8),
                               headers: [("traceparent", Array("00-abc-01".utf8))])
    let model = SegmentationResult.Model(name: "m", sha256: "00")
    var source: SegmentationResult.Source { .init(topic: "req", partition: 2, offset: 41) }

    func json(_ bytes: [UInt8]?) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes ?? [])) as? [String: Any])
    }

    @Test func anOkOutcomeGivesAResultAndAMetricsRecord() throws {
        let result = SegmentationResult(
            requestID: "r-1", status: "ok", mask: .init(pngBase64: "AA==", width: 2, height: 3), foregroundFraction: 0.25, dice: 0.9,
            model: model, supportSet: .init(id: "s", version: "4", sha256: "ff", sizeUsed: 16), options: nil,
            timingsMs: .init(queue: 1, fetch: 2, inference: 3, total: 6), worker: "w", source: source, replay: nil, error: nil)
        let records = OutgoingRecords.make(.ok(requestID: "r-1", result: result), for: message, topics: topics, maxRecordBytes: 1_000_000,
                                           worker: "w:1", replay: false, timeMs: 1234)
        #expect(records.map(\.topic) == ["res", "met"])
        #expect(records[0].key == Array("r-1".utf8))
        #expect(records[0].headers.map(\.0) == ["traceparent"])
        #expect(try json(records[0].value)["status"] as? String == "ok")
        let metrics = try json(records[1].value)
        #expect(metrics["schema"] as? String == "universeg.metrics.v1" && metrics["type"] as? String == "request")
        #expect(metrics["worker"] as? String == "w:1" && metrics["time_ms"] as? Int == 1234 && metrics["replay"] as? Bool == false)
        #expect(metrics["status"] as? String == "ok" && metrics["dice"] as? Double == 0.9 && metrics["foreground_fraction"] as? Double == 0.25)
        #expect((metrics["timings_ms"] as? [String: Any])?["total"] as? Double == 6)
        #expect((metrics["support_set"] as? [String: Any])?["size_used"] as? Int == 16)
        #expect((metrics["source"] as? [String: Any])?["offset"] as? Int == 41)
        #expect(metrics["error_code"] == nil, "absent fields are left out, not null")
    }

    @Test func aFailedOutcomeGivesAnErrorResultADeadLetterAndAMetricsRecord() throws {
        let error = ServiceError(.dicomInvalid, "truncated")
        let result = SegmentationResult(requestID: "r-2", status: "error", mask: nil, foregroundFraction: nil, dice: nil, model: model,
                                        supportSet: nil, options: nil, timingsMs: nil, worker: "w", source: source, replay: nil,
                                        error: .init(code: error.code, reason: error.reason))
        let records = OutgoingRecords.make(.failed(requestID: "r-2", result: result, error: error), for: message, topics: topics,
                                           maxRecordBytes: 1_000_000, worker: "w:1", replay: true, timeMs: 5)
        #expect(records.map(\.topic) == ["res", "dlq", "met"])
        let dead = records[1]
        #expect(dead.key == message.key && dead.value == message.value)
        let headers = Dictionary(dead.headers.map { ($0.0, String(decoding: $0.1, as: UTF8.self)) }) { a, _ in a }
        #expect(headers["universeg.error.code"] == "dicom_invalid" && headers["universeg.error.reason"] == "truncated")
        #expect(headers["universeg.source.topic"] == "req" && headers["universeg.source.partition"] == "2"
                && headers["universeg.source.offset"] == "41" && headers["traceparent"] == "00-abc-01")
        let metrics = try json(records[2].value)
        #expect(metrics["status"] as? String == "error" && metrics["error_code"] as? String == "dicom_invalid")
        #expect(metrics["replay"] as? Bool == true && metrics["dice"] == nil)
    }

    @Test func withoutAUsableRequestIDThereIsNoResultButADeadLetter() throws {
        let records = OutgoingRecords.make(.failed(requestID: nil, result: nil, error: ServiceError(.invalidJSON, "x")), for: message,
                                           topics: topics, maxRecordBytes: 1_000_000, worker: "w", replay: false, timeMs: 0)
        #expect(records.map(\.topic) == ["dlq", "met"])
        #expect(records[1].key == nil)
    }

    @Test func aTransientOutcomeProducesNothing() {
        let records = OutgoingRecords.make(.unavailable(requestID: "r", error: .unavailable("store", "down")), for: message,
                                           topics: topics, maxRecordBytes: 1_000_000, worker: "w", replay: false, timeMs: 0)
        #expect(records.isEmpty)
    }
}

@Suite struct ReplayFilterTests {
    let filter = ReplayFilter(fromMilliseconds: 1000, toMilliseconds: 2000)

    @Test func recordsInTheRangeAreReprocessedOthersSkippedOrEndTheRange() {
        #expect(filter.decide(timestampMilliseconds: 999) == .skip)
        #expect(filter.decide(timestampMilliseconds: 1000) == .process)
        #expect(filter.decide(timestampMilliseconds: 2000) == .process)
        #expect(filter.decide(timestampMilliseconds: 2001) == .endOfRange)
        #expect(filter.decide(timestampMilliseconds: nil) == .process)
    }
}
