import Foundation
import SegIO
import SegModel
import SegService
import Testing

/// A file store with one support set ("blobs", versions 1 and 2, LATEST = 2) and query images.
final class TestStore {
    let root: String
    init() throws {
        root = NSTemporaryDirectory() + "universeg-store-" + UUID().uuidString
        for version in ["1", "2"] {
            var entries: [String] = []
            for i in 0..<4 {
                let (image, label) = TestStore.pair(seed: i, size: 24)
                try write("blobs/\(version)/images/\(i).png", try PNGCodec.encodeGray8(image, width: 24, height: 24))
                try write("blobs/\(version)/labels/\(i).png", try PNGCodec.encodeGray8(label, width: 24, height: 24))
                entries.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
            }
            try write("blobs/\(version)/support.json", Array(#"{"name":"blobs","version":"\#(version)","entries":[\#(entries.joined(separator: ","))]}"#.utf8))
        }
        try write("blobs/LATEST", Array("2\n".utf8))
        let (q, _) = TestStore.pair(seed: 9, size: 30)
        try write("queries/q.png", try PNGCodec.encodeGray8(q, width: 30, height: 30))
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: root + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    static func pair(seed: Int, size: Int) -> ([UInt8], [UInt8]) {
        var image = [UInt8](repeating: 180, count: size * size), label = [UInt8](repeating: 0, count: size * size)
        let c = size / 3 + seed % 5
        for y in 0..<size { for x in 0..<size where abs(x - c) + abs(y - c) < size / 4 { image[y * size + x] = 60; label[y * size + x] = 255 } }
        return (image, label)
    }
}

@Suite struct ProcessorTests {
    func processor(_ store: TestStore, cacheBytes: Int = 1 << 30) throws -> RequestProcessor {
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 3)
        let weights = try WeightsFile(bytes: try SafeTensors.serialize(model.namedTensors, metadata: WeightsFile.metadata(for: cfg)),
                                      path: "test.safetensors")
        return RequestProcessor(weights: weights, store: try SupportSetStore(url: "file://" + store.root),
                                cache: SupportSetCache(maxBytes: cacheBytes), workerName: "test-worker")
    }

    let source = SegmentationResult.Source(topic: "t", partition: 0, offset: 5)

    @Test func storePathRequestGivesAMaskAtTheImageSizeWithDice() throws {
        let store = try TestStore()
        let p = try processor(store)
        let session = InferenceSession(model: p.weights.model)
        let truth = Data(try PNGCodec.encodeGray8(TestStore.pair(seed: 9, size: 30).1, width: 30, height: 30)).base64EncodedString()
        let json = #"{"request_id":"r1","support_set":{"id":"blobs"},"image":{"store_path":"queries/q.png"},"options":{"support_size":2,"ensemble":2,"seed":1},"ground_truth":{"png_base64":"\#(truth)"}}"#
        guard case .ok(let id, let result) = p.process(value: Array(json.utf8), source: source, queuedMs: 1, session: session) else {
            Issue.record("expected a result"); return
        }
        #expect(id == "r1" && result.status == "ok")
        #expect(result.supportSet?.version == "2" && result.supportSet?.sizeUsed == 2)
        #expect(result.mask?.width == 30 && result.mask?.height == 30)
        let mask = try PNGCodec.decode([UInt8](Data(base64Encoded: result.mask!.pngBase64)!))
        #expect(mask.width == 30 && Set(mask.values).isSubset(of: [0, 255]))
        #expect(result.dice != nil && result.dice! >= 0 && result.dice! <= 1)
        #expect(result.source == source && result.worker == "test-worker")
        #expect(result.model.sha256.count == 64)
    }

    @Test(arguments: [
        (#"{"request_id":"r","support_set":{"id":"nope"},"image":{"store_path":"queries/q.png"}}"#, "support_set_not_found"),
        (#"{"request_id":"r","support_set":{"id":"blobs","version":"9"},"image":{"store_path":"queries/q.png"}}"#, "support_set_not_found"),
        (#"{"request_id":"r","support_set":{"id":"blobs"},"image":{"store_path":"queries/missing.png"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"blobs"},"image":{"store_path":"../x.png"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"blobs"},"image":{"png_base64":"aGVsbG8="}}"#, "image_decode"),
        (#"{"request_id":"r","support_set":{"id":"blobs"},"image":{"store_path":"queries/q.png"},"options":{"support_size":9}}"#, "invalid_options"),
    ])
    func failuresCarryTheirCodeAndAnErrorResult(json: String, code: String) throws {
        let store = try TestStore()
        let p = try processor(store)
        let outcome = p.process(value: Array(json.utf8), source: source, queuedMs: 0, session: InferenceSession(model: p.weights.model))
        guard case .failed(let id, let result, let error) = outcome else { Issue.record("expected a failure"); return }
        #expect(error.code.rawValue == code, "\(error.reason)")
        #expect(id == "r")
        #expect(result?.status == "error" && result?.error?.code.rawValue == code)
    }

    @Test func invalidSupportSetAndTombstone() throws {
        let store = try TestStore()
        try store.write("broken/1/support.json", Array(#"{"entries":[{"image":"../../etc/passwd","label":"x.png"}]}"#.utf8))
        let p = try processor(store)
        let session = InferenceSession(model: p.weights.model)
        let json = #"{"request_id":"r","support_set":{"id":"broken","version":"1"},"image":{"store_path":"queries/q.png"}}"#
        guard case .failed(_, _, let error) = p.process(value: Array(json.utf8), source: source, queuedMs: 0, session: session) else {
            Issue.record("expected a failure"); return
        }
        #expect(error.code == .supportSetInvalid)
        guard case .failed(let id, let result, let tomb) = p.process(value: nil, source: source, queuedMs: 0, session: session) else {
            Issue.record("expected a failure"); return
        }
        #expect(tomb.code == .invalidJSON && id == nil && result == nil)
    }

    @Test func cacheLoadsOnceForConcurrentRequestsAndEvictsByBytes() throws {
        let store = try TestStore()
        let p = try processor(store)
        let json = Array(#"{"request_id":"r","support_set":{"id":"blobs","version":"1"},"image":{"store_path":"queries/q.png"}}"#.utf8)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            _ = p.process(value: json, source: source, queuedMs: 0, session: InferenceSession(model: p.weights.model))
        }
        #expect(p.cache.statistics.misses == 1 && p.cache.statistics.hits == 3)
        // A cache too small for one set keeps nothing.
        let tiny = try processor(store, cacheBytes: 10)
        _ = tiny.process(value: json, source: source, queuedMs: 0, session: InferenceSession(model: tiny.weights.model))
        _ = tiny.process(value: json, source: source, queuedMs: 0, session: InferenceSession(model: tiny.weights.model))
        #expect(tiny.cache.statistics.misses == 2 && tiny.cache.statistics.entries == 0)
    }
}
