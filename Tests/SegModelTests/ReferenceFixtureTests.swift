import Foundation
import SegIO
import SegModel
import Testing

/// Logits of this engine against the PyTorch reference (the authors' pairwise algorithm,
/// computed in float64 by Scripts/make_fixtures.py): max |swift - reference| must be at most
/// 1e-4 * (1 + max |reference|).
@Suite struct ReferenceFixtureTests {
    static func path(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
    }

    @Test(arguments: [("small", [1, 3, 8]), ("v1", [1, 4, 16])])
    func logitsMatchTheAuthorsAlgorithm(name: String, counts: [Int]) throws {
        let weights = try WeightsFile(path: Self.path("\(name).weights.safetensors"))
        let cfg = weights.model.configuration
        if name == "v1" { #expect(cfg == .v1) }
        let case_ = try SafeTensors.parse(try FileIO.read(Self.path("\(name).case.safetensors"), maxBytes: 64 << 20))
        let plane = cfg.inputSize * cfg.inputSize
        let query = try #require(case_.tensors["query"]).values
        let images = try #require(case_.tensors["support_images"]).values
        let labels = try #require(case_.tensors["support_labels"]).values
        #expect(query.count == plane)
        let total = images.count / plane
        let support = try SupportTensors(
            images: (0..<total).map { Array(images[($0 * plane)..<(($0 + 1) * plane)]) },
            labels: (0..<total).map { Array(labels[($0 * plane)..<(($0 + 1) * plane)]) },
            size: cfg.inputSize)
        let session = InferenceSession(model: weights.model)
        for n in counts {
            let reference = try #require(case_.tensors["logits_n\(n)"]).values
            let logits = try session.logits(query: query, support: support, entries: Array(0..<n))
            var maxDiff: Float = 0, maxRef: Float = 0
            for i in reference.indices {
                maxDiff = max(maxDiff, abs(logits[i] - reference[i]))
                maxRef = max(maxRef, abs(reference[i]))
            }
            print("reference fixture \(name) n=\(n): max |swift - reference| = \(maxDiff), max |reference| = \(maxRef)")
            #expect(maxDiff <= 1e-4 * (1 + maxRef), "\(name) n=\(n): max diff \(maxDiff), max |ref| \(maxRef)")
            #expect(maxRef > 0.1, "reference logits should not be trivially small")
        }
    }
}
