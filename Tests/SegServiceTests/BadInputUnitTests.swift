import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SegIO
import SegService
import Testing

/// Unit-level checks behind the bad-input corpus (Tests/WorkerIntegrationTests/Fixtures/bad-requests):
/// strict JSON, usable request ids, record bounds, store paths that are not files.
@Suite struct StrictRequestParsingTests {
    static let valid = #"{"request_id":"r-1","support_set":{"id":"s"},"image":{"store_path":"q.png"}}"#

    func code(_ bytes: [UInt8]) -> String? {
        do {
            _ = try SegmentationRequest.parse(bytes)
            return nil
        } catch let error as ServiceError {
            return error.code.rawValue
        } catch {
            return "other"
        }
    }

    func code(_ text: String) -> String? { code(Array(text.utf8)) }

    @Test func lenientJSONThatFoundationAcceptsIsRefused() {
        #expect(code(Self.valid) == nil)
        #expect(code(String(Self.valid.dropLast()) + ",}") == "invalid_json")  // trailing comma
        #expect(code(#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"q"},"options":{"x":[1,]}}"#) == "invalid_json")
        #expect(code(Array(Self.valid.data(using: .utf16LittleEndian)!)) == "invalid_json")
        #expect(code(Array(Self.valid.data(using: .utf16)!)) == "invalid_json")  // with a byte order mark
        #expect(code(Array(Self.valid.utf8) + [0]) == "invalid_json")
        #expect(code(#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"q"},"o":01}"#) == "invalid_json")
        #expect(code(#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"q"},"o":NaN}"#) == "invalid_json")
        #expect(code(#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"q"},"o":"\x"}"#) == "invalid_json")
        #expect(code(#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"q"},"o":"\ud800"}"#) == "invalid_json")
        #expect(code(Self.valid + " x") == "invalid_json")
        #expect(code("[" + Self.valid + "]") == "invalid_json")
        #expect(code(" \n" + Self.valid + "\n") == nil)
        #expect(code([0xEF, 0xBB, 0xBF] + Array(Self.valid.utf8)) == nil)  // a UTF-8 byte order mark is skipped
        #expect(code(#"{"request_\u0069d":"r-1","support_set":{"id":"\u0073"},"image":{"store_path":"q.png"}}"#) == nil)
    }

    @Test func nestingIsBounded() {
        let inner = { (depth: Int) in String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        let prefix = String(Self.valid.dropLast()) + #","x":"#
        #expect(code(prefix + inner(511) + "}") == "invalid_request")  // 512 levels: parsed, unknown field
        #expect(code(prefix + inner(512) + "}") == "invalid_json")
        #expect(code(inner(100_000)) == "invalid_json")
    }

    @Test func duplicateKeysAreRefusedAndADuplicatedRequestIDIsNotUsable() throws {
        let dupOption = #"{"request_id":"r-1","support_set":{"id":"s"},"image":{"store_path":"q"},"options":{"seed":1,"seed":2}}"#
        let error = #expect(throws: ServiceError.self) { try SegmentationRequest.parse(Array(dupOption.utf8)) }
        #expect(error?.code == .invalidRequest)
        #expect(error?.reason.contains("'options.seed'") == true)
        #expect(SegmentationRequest.salvageRequestID(Array(dupOption.utf8)) == "r-1")
        let dupID = #"{"request_id":"a","request_id":"b","support_set":{"id":"s"},"image":{"store_path":"q"}}"#
        #expect(code(dupID) == "invalid_request")
        #expect(SegmentationRequest.salvageRequestID(Array(dupID.utf8)) == nil)
        // Equal after unescaping: "\u0069mage" is "image".
        #expect(code(String(Self.valid.dropLast()) + #","\u0069mage":{"store_path":"x"}}"#) == "invalid_request")
    }

    @Test func reasonsShowOnlyIdentifierLikeFieldNames() throws {
        func reason(_ json: String) -> String {
            (#expect(throws: ServiceError.self) { try SegmentationRequest.parse(Array(json.utf8)) })?.reason ?? ""
        }
        #expect(reason(String(Self.valid.dropLast()) + #","note_1":1}"#).contains("'note_1'"))
        let free = reason(String(Self.valid.dropLast()) + #","call me at 555":1}"#)
        #expect(!free.contains("555") && free.contains("not shown"))
    }

    @Test func decodedImageBytesAreBounded() {
        var limits = SegmentationRequest.Limits()
        limits.maxImageBytes = 10
        // 12 bytes of base64 decode to 9 bytes; 16 to 12 (above 10, although the text is within
        // the length bound for 10 bytes).
        let nine = Data(repeating: 1, count: 9).base64EncodedString(), twelve = Data(repeating: 1, count: 12).base64EncodedString()
        let json = { (b64: String) in Array(#"{"request_id":"r","support_set":{"id":"s"},"image":{"png_base64":"\#(b64)"}}"#.utf8) }
        #expect((try? SegmentationRequest.parse(json(nine), limits: limits)) != nil)
        let error = #expect(throws: ServiceError.self) { try SegmentationRequest.parse(json(twelve), limits: limits) }
        #expect(error?.code == .imageTooLarge)
    }
}

@Suite struct RecordBoundsTests {
    let small: [(String, [UInt8])] = [("traceparent", Array("00-ab-01".utf8)), ("x-empty", [])]

    @Test func resultsCarrySmallHeadersAndCountTheOthers() {
        #expect(RecordBounds.resultHeaders(small).map(\.0) == ["traceparent", "x-empty"])
        let big = small + [("x-padding", [UInt8](repeating: 65, count: 600_000)), ("after", [1])]
        let kept = RecordBounds.resultHeaders(big)
        #expect(kept.map(\.0) == ["traceparent", "x-empty", "after", "universeg.headers.dropped"])
        #expect(kept.last?.1 == Array("1".utf8))
    }

    @Test func deadLettersKeepEverythingThatFitsAndAlwaysFit() {
        let extra: [(String, [UInt8])] = [("universeg.error.code", Array("invalid_json".utf8))]
        let value = [UInt8](repeating: 7, count: 1000)
        let plain = RecordBounds.deadLetter(key: [1], value: value, headers: small, extra: extra)
        #expect(plain.key == [1] && plain.value == value && plain.headers.map(\.0) == ["traceparent", "x-empty", "universeg.error.code"])
        // A header that fills the record: bounded like a result's.
        let huge = small + [("x-padding", [UInt8](repeating: 66, count: 999_700))]
        let bounded = RecordBounds.deadLetter(key: [1], value: value, headers: huge, extra: extra)
        #expect(bounded.value == value && bounded.headers.map(\.0) == ["traceparent", "x-empty", "universeg.headers.dropped", "universeg.error.code"])
        // A value that fills the record: the headers go, then the key, then the value.
        let fullValue = [UInt8](repeating: 9, count: 999_900)
        let noValue = RecordBounds.deadLetter(key: [UInt8](repeating: 1, count: 500), value: fullValue, headers: small, extra: extra)
        #expect(noValue.key == nil && noValue.value == nil)
        #expect(noValue.headers.contains { $0.0 == "universeg.value.dropped" && $0.1 == Array("999900".utf8) })
        for record in [plain, bounded, noValue] {
            #expect(RecordBounds.size(key: record.key, value: record.value, headers: record.headers) <= RecordBounds.defaultMaxRecordBytes)
        }
        #expect(RecordBounds.maxRecordBytes(["message.max.bytes": "2000000"]) == 2_000_000)
        #expect(RecordBounds.maxRecordBytes([:]) == 1_000_000)
    }
}

@Suite struct StoreEntriesThatAreNotFilesTests {
    @Test func directoriesWhereFilesShouldBeAreRequestOrSetErrors() throws {
        let root = NSTemporaryDirectory() + "universeg-store-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/queries/sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/set/1/support.json", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/other/LATEST", withIntermediateDirectories: true)
        let store = try SupportSetStore(url: "file://" + root)
        #expect((#expect(throws: ServiceError.self) { try store.image(storePath: "queries/sub") })?.code == .invalidRequest)
        #expect((#expect(throws: ServiceError.self) { try store.manifest(id: "set", version: "1") })?.code == .supportSetInvalid)
        #expect((#expect(throws: ServiceError.self) { try store.latestVersion(of: "other") })?.code == .supportSetInvalid)
        // A FIFO would block the reader in open(2): refused before it is opened.
        #expect(mkfifo(root + "/queries/pipe.png", 0o600) == 0)
        #expect((#expect(throws: ServiceError.self) { try store.image(storePath: "queries/pipe.png") })?.code == .invalidRequest)
    }
}
