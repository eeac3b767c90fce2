import Foundation
import SegIO
import SegModel
import SegService
import Testing

/// The whole bad-input corpus (Tests/WorkerIntegrationTests/Fixtures/bad-requests, written by
/// Scripts/make_bad_requests.py) through `RequestProcessor` without Kafka: every case gives its
/// expected outcome (error code, whether an error result is possible, the mask size of ok cases).
/// The integration runner (BadInputTests) adds the Kafka side: dead letters, headers, offsets.
/// The processor has no DICOMweb server, like the integration runner's worker.
@Suite struct BadInputCorpusTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("WorkerIntegrationTests/Fixtures/bad-requests")

    struct Case: Decodable {
        let name: String
        let value: String?
        let expect: String
        let errorResult: Bool
        let requestID: String?
        let mask: [Int]?
        let description: String

        enum CodingKeys: String, CodingKey {
            case name, value, expect, mask, description
            case errorResult = "error_result", requestID = "request_id"
        }
    }

    struct Manifest: Decodable {
        let cases: [Case]
    }

    @Test func everyCaseGivesItsOutcome() throws {
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("manifest.json")))
        #expect(manifest.cases.filter { $0.name.hasPrefix("dicom") }.count >= 30)
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 16)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 3)
        let weights = try WeightsFile(bytes: try SafeTensors.serialize(model.namedTensors, metadata: WeightsFile.metadata(for: cfg)),
                                      path: "test.safetensors")
        let processor = RequestProcessor(weights: weights, store: try SupportSetStore(url: "file://" + Self.fixtures.path + "/store"),
                                         cache: SupportSetCache(maxBytes: 1 << 30), workerName: "corpus")
        let session = InferenceSession(model: weights.model)
        for (index, c) in manifest.cases.enumerated() {
            let what = "\(c.name) (\(c.description))"
            let value = try c.value.map { [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent($0))) }
            let outcome = processor.process(value: value, source: .init(topic: "t", partition: 0, offset: Int64(index)),
                                            queuedMs: 0, session: session)
            switch outcome {
            case .ok(let id, let result):
                #expect(c.expect == "ok", "\(what): ok, expected \(c.expect)")
                #expect(id == c.requestID, "\(what)")
                #expect([result.mask?.width, result.mask?.height] == (c.mask ?? []).map { Optional($0) }, "\(what): mask")
            case .failed(let id, let result, let error):
                #expect(error.code.rawValue == c.expect, "\(what): \(error.code.rawValue) (\(error.reason)), expected \(c.expect)")
                #expect((result != nil) == c.errorResult, "\(what): error result \(result != nil)")
                if c.errorResult {
                    #expect(id == c.requestID && result?.error?.code.rawValue == c.expect, "\(what)")
                }
                #expect(!error.reason.contains("ZZCANARY"), "\(what): the reason holds request data")
            case .unavailable(_, let error):
                Issue.record("\(what): unavailable (\(error.reason)), expected \(c.expect)")
            }
        }
    }
}
