import SegModel
import SegTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ArchitectureTests {
    @Test func v1HasTheReleasedParameterCount() {
        // 1,182,785 parameters in the authors' released v1 network (encoder [64, 64, 64, 64], decoder
        // [64, 64, 64], 1x1 output convolution).
        #expect(UniverSegConfiguration.v1.parameterCount == 1_182_785)
        #expect(UniverSegConfiguration.v1.parameterSpecs.count == 7 * 6 + 2)
        let spec = UniverSegConfiguration.v1.parameterSpecs.first { $0.name == "dec_blocks.0.cross.cross_conv.weight" }
        #expect(spec?.shape == [64, 256, 3, 3])
    }

    @Test func arithmeticMatchesTheDesignFigures() {
        // Multiply-accumulates at 128x128, as counted for the v1 network: the reference algorithm
        // (pairwise concatenation) does 5.19 G per support entry and 1.60 G fixed; with the exact
        // reductions (see InferenceSession) 1.59 G per entry and 5.19 G fixed, 2.8x less at N=16.
        let cfg = UniverSegConfiguration.v1
        func g(_ n: Int, _ a: UniverSegConfiguration.Algorithm) -> Double { Double(cfg.multiplyAccumulates(supportSize: n, algorithm: a)) / 1e9 }
        #expect(abs((g(2, .reference) - g(1, .reference)) - 5.19) < 0.01)
        #expect(abs((g(1, .reference) - (g(2, .reference) - g(1, .reference))) - 1.60) < 0.01)
        #expect(abs((g(2, .reduced) - g(1, .reduced)) - 1.59) < 0.01)
        #expect(abs((2 * g(16, .reference) / (2 * g(16, .reduced))) - 2.8) < 0.05)
    }

    @Test func invalidConfigurationsAreRejected() {
        let bad = [
            UniverSegConfiguration(encoderWidths: [8], decoderWidths: [], inputSize: 64),
            UniverSegConfiguration(encoderWidths: [8, 8], decoderWidths: [8, 8], inputSize: 64),
            UniverSegConfiguration(encoderWidths: [8, 8, 8], decoderWidths: [8, 8], inputSize: 30),
            UniverSegConfiguration(encoderWidths: [8, 0], decoderWidths: [8], inputSize: 64),
        ]
        for cfg in bad { #expect(throws: ModelError.self) { try cfg.validate() } }
    }
}

@Suite struct WeightValidationTests {
    let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 8)

    func tensors() throws -> [String: NamedTensor] {
        try UniverSeg.randomlyInitialized(cfg, seed: 3).namedTensors
    }

    @Test func missingTensorIsNamed() throws {
        var t = try tensors()
        t["enc_blocks.1.support.vmapped.conv.bias"] = nil
        let error = #expect(throws: ModelError.self) { try UniverSeg(configuration: cfg, tensors: t) }
        #expect(error?.code == .missingTensor)
        #expect(error?.message.contains("enc_blocks.1.support.vmapped.conv.bias") == true)
    }

    @Test func wrongShapeIsNamed() throws {
        var t = try tensors()
        t["dec_blocks.0.cross.cross_conv.weight"] = NamedTensor(shape: [4, 8, 3, 3], values: .init(repeating: 0, count: 288))
        let error = #expect(throws: ModelError.self) { try UniverSeg(configuration: cfg, tensors: t) }
        #expect(error?.code == .shapeMismatch)
        #expect(error?.message.contains("dec_blocks.0.cross.cross_conv.weight") == true)
    }

    @Test func unknownTensorIsRejected() throws {
        var t = try tensors()
        t["enc_blocks.2.cross.cross_conv.weight"] = NamedTensor(shape: [1], values: [0])
        let error = #expect(throws: ModelError.self) { try UniverSeg(configuration: cfg, tensors: t) }
        #expect(error?.code == .unexpectedTensor)
    }

    @Test func nonFiniteValueIsRejected() throws {
        var t = try tensors()
        t["out_conv.conv.bias"] = NamedTensor(shape: [1], values: [.nan])
        let error = #expect(throws: ModelError.self) { try UniverSeg(configuration: cfg, tensors: t) }
        #expect(error?.code == .invalidValue)
    }
}

extension ThreadCountTests {
    @Suite struct ForwardPassTests {
        func smoothInputs(side: Int, entries: Int, seed: UInt64) -> ([Float], [[Float]], [[Float]]) {
            var rng = TestRandom(seed)
            func image() -> [Float] { rng.floats(side * side).map { 0.5 + 0.5 * $0 } }
            let images = (0..<entries).map { _ in image() }
            let labels = images.map { $0.map { $0 > 0.55 ? Float(1) : 0 } }
            return (image(), images, labels)
        }

        @Test(arguments: [
            (UniverSegConfiguration(encoderWidths: [3, 4], decoderWidths: [5], inputSize: 6), 1),
            (UniverSegConfiguration(encoderWidths: [4, 5, 6], decoderWidths: [3, 4], inputSize: 12), 3),
            (UniverSegConfiguration(encoderWidths: [8, 8, 8, 8], decoderWidths: [8, 8, 8], inputSize: 16), 5),
        ])
        func reducedForwardEqualsPairwiseDefinition(cfg: UniverSegConfiguration, entries: Int) throws {
            let model = try UniverSeg.randomlyInitialized(cfg, seed: UInt64(entries))
            let (query, images, labels) = smoothInputs(side: cfg.inputSize, entries: entries, seed: 9)
            let expected = NaiveUniverSeg(model).logits(query: query, images: images, labels: labels)
            let support = try SupportTensors(images: images, labels: labels, size: cfg.inputSize)
            let session = InferenceSession(model: model)
            let logits = try session.logits(query: query, support: support)
            #expect(relativeError(logits, expected) < 1e-5)
            // A subset in another order equals the naive network on that subset.
            if entries > 1 {
                let order = Array((0..<entries).reversed().prefix(entries - 1))
                let sub = try session.logits(query: query, support: support, entries: order)
                let subExpected = NaiveUniverSeg(model).logits(
                    query: query, images: order.map { images[$0] }, labels: order.map { labels[$0] })
                #expect(relativeError(sub, subExpected) < 1e-5)
            }
        }

        @Test func sessionReusesItsMemoryAndIsDeterministic() throws {
            let cfg = UniverSegConfiguration(encoderWidths: [8, 8, 8], decoderWidths: [8, 8], inputSize: 32)
            let model = try UniverSeg.randomlyInitialized(cfg, seed: 5)
            let (query, images, labels) = smoothInputs(side: 32, entries: 6, seed: 2)
            let support = try SupportTensors(images: images, labels: labels, size: 32)
            let session = InferenceSession(model: model)
            let first = try session.logits(query: query, support: support)
            let bytes = session.workspaceBytes
            let second = try session.logits(query: query, support: support)
            _ = try session.logits(query: query, support: support, entries: [1, 2])
            #expect(first == second)
            #expect(session.workspaceBytes == bytes)
        }

        @Test func inputShapeErrorsAreThrown() throws {
            let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 8)
            let session = InferenceSession(model: try UniverSeg.randomlyInitialized(cfg, seed: 1))
            let support = try SupportTensors(images: [[Float](repeating: 0, count: 64)], labels: [[Float](repeating: 1, count: 64)], size: 8)
            #expect(throws: ModelError.self) { try session.logits(query: [0], support: support) }
            #expect(throws: ModelError.self) { try session.logits(query: .init(repeating: 0, count: 64), support: support, entries: [3]) }
            #expect(throws: ModelError.self) { try session.logits(query: .init(repeating: 0, count: 64), support: support, entries: []) }
            #expect(throws: ModelError.self) { try SupportTensors(images: [], labels: [], size: 8) }
        }
    }
}

@Suite struct EnsembleTests {
    @Test func withoutSupportSizeTheWholeSetIsUsedInOrder() throws {
        let subsets = try EnsembleOptions(supportSize: nil, ensembleCount: 5, seed: 1).subsets(poolSize: 4)
        #expect(subsets == [[0, 1, 2, 3]])
    }

    @Test func subsetsAreSeededDistinctAndInRange() throws {
        let options = EnsembleOptions(supportSize: 4, ensembleCount: 10, seed: 7)
        let a = try options.subsets(poolSize: 9)
        #expect(a == (try options.subsets(poolSize: 9)))
        #expect(a.count == 10)
        for s in a {
            #expect(Set(s).count == 4)
            #expect(s.allSatisfy { (0..<9).contains($0) })
        }
        #expect(a != (try EnsembleOptions(supportSize: 4, ensembleCount: 10, seed: 8).subsets(poolSize: 9)))
        #expect(Set(a.map { $0.sorted() }).count > 1)
    }

    @Test func invalidOptionsAreRejected() {
        #expect(throws: ModelError.self) { try EnsembleOptions(supportSize: 5).subsets(poolSize: 4) }
        #expect(throws: ModelError.self) { try EnsembleOptions(supportSize: 0).subsets(poolSize: 4) }
        #expect(throws: ModelError.self) { try EnsembleOptions(ensembleCount: 0).subsets(poolSize: 4) }
    }

    @Test func ensembleAveragesSubsetProbabilities() throws {
        let cfg = UniverSegConfiguration(encoderWidths: [4, 4], decoderWidths: [4], inputSize: 8)
        let session = InferenceSession(model: try UniverSeg.randomlyInitialized(cfg, seed: 11))
        var rng = TestRandom(3)
        let images = (0..<5).map { _ in rng.floats(64).map { abs($0) } }
        let labels = images.map { $0.map { $0 > 0.5 ? Float(1) : 0 } }
        let support = try SupportTensors(images: images, labels: labels, size: 8)
        let query = rng.floats(64).map { abs($0) }
        let options = EnsembleOptions(supportSize: 2, ensembleCount: 3, seed: 4)
        let probabilities = try session.probabilities(query: query, support: support, options: options)
        var expected = [Float](repeating: 0, count: 64)
        for subset in try options.subsets(poolSize: 5) {
            let l = try session.logits(query: query, support: support, entries: subset)
            for i in expected.indices { expected[i] += Float(1 / (1 + exp(-Double(l[i])))) / 3 }
        }
        #expect(relativeError(probabilities, expected) < 1e-6)
    }
}


@Suite struct ConvolutionMethodTests {
    @Test func winogradAndIm2colPathsAgree() throws {
        let cfg = UniverSegConfiguration(encoderWidths: [16, 16, 16], decoderWidths: [16, 16], inputSize: 32)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 21)
        var rng = TestRandom(8)
        let images = (0..<3).map { _ in rng.floats(1024).map { abs($0) } }
        let labels = images.map { $0.map { $0 > 0.5 ? Float(1) : 0 } }
        let support = try SupportTensors(images: images, labels: labels, size: 32)
        let query = rng.floats(1024).map { abs($0) }
        let session = InferenceSession(model: model)
        let winograd = try session.logits(query: query, support: support)
        session.useWinograd = false
        let direct = try session.logits(query: query, support: support)
        #expect(relativeError(winograd, direct) < 1e-5)
        #expect(winograd != direct)  // the two paths really differ in rounding
    }
}
