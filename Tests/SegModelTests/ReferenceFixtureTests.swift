import Foundation
import SegIO
import SegKernels
import SegModel
import Testing

/// Tests that set the process-wide thread count (BLAS.setThreadCount), and tests whose
/// expectations depend on it (the session's scratch memory grows with it), one at a time.
@Suite(.serialized) enum ThreadCountTests {}

extension ThreadCountTests {
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
            // Every build of the vector kernels this CPU runs (see KernelISA).
            let active = KernelISA.active
            defer { KernelISA.active = active }
            for isa in KernelISA.supportedHere {
                KernelISA.active = isa
                try compare(weights.model, query: query, support: support, counts: counts, case_: case_, name: "\(name)/\(isa)")
            }
        }

        /// The same comparison with 2 threads, in both threading modes and with im2col only.
        @Test func logitsMatchWithThreadsAndBothConvolutionMethods() throws {
            let weights = try WeightsFile(path: Self.path("small.weights.safetensors"))
            let case_ = try SafeTensors.parse(try FileIO.read(Self.path("small.case.safetensors"), maxBytes: 64 << 20))
            let plane = 64 * 64
            let images = try #require(case_.tensors["support_images"]).values
            let labels = try #require(case_.tensors["support_labels"]).values
            let support = try SupportTensors(
                images: (0..<8).map { Array(images[($0 * plane)..<(($0 + 1) * plane)]) },
                labels: (0..<8).map { Array(labels[($0 * plane)..<(($0 + 1) * plane)]) }, size: 64)
            let query = try #require(case_.tensors["query"]).values
            defer { BLAS.setThreadCount(1) }
            for mode in [BLAS.ThreadingMode.independentCalls, .threadedCalls] {
                BLAS.setThreadCount(2, mode: mode)
                for winograd in [true, false] {
                    try compare(weights.model, query: query, support: support, counts: [3, 8], case_: case_,
                                name: "small/\(mode)/winograd=\(winograd)", winograd: winograd)
                }
            }
            // Entries are handed to the threads dynamically; the result must not depend on which
            // thread took which entry: repeated passes, in one session and in a fresh one, are
            // bit-identical (2 threads, 1 to 8 entries, including a subset out of order).
            BLAS.setThreadCount(2, mode: .independentCalls)
            let first = InferenceSession(model: weights.model), second = InferenceSession(model: weights.model)
            for entries in [[0], [0, 1, 2], [7, 2, 5, 0, 3], Array(0..<8)] {
                let expected = try first.logits(query: query, support: support, entries: entries)
                for _ in 0..<3 {
                    #expect(try first.logits(query: query, support: support, entries: entries) == expected)
                    #expect(try second.logits(query: query, support: support, entries: entries) == expected)
                }
            }
        }

        func compare(_ model: UniverSeg, query: [Float], support: SupportTensors, counts: [Int],
                     case_: SafeTensors.Contents, name: String, winograd: Bool = true) throws {
            let session = InferenceSession(model: model)
            session.useWinograd = winograd
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
}
