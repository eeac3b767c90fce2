import Foundation
import SegIO
import SegModel
import SegTesting
import Testing

/// Runs the built `universeg-worker` binary (a sibling of the test bundle).
struct Worker {
    static var executable: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [dir, dir.deletingLastPathComponent()].map { $0.appendingPathComponent("universeg-worker").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Runs the binary with `arguments`; with a `launcher` (e.g. ["/usr/bin/taskset", "-c", "0"]),
    /// runs the launcher with the binary and `arguments` appended.
    static func run(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws -> ProcessResult {
        try runToCompletion(launcher.first ?? executable,
                            launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [executable] + arguments,
                            environment: environment)
    }
}

typealias Scratch = TemporaryDirectory

/// Small random weights (32x32 input) and a synthetic support set of 4 entries.
func makeInputs(_ s: Scratch) throws {
    let cfg = UniverSegConfiguration(encoderWidths: [4, 4, 4], decoderWidths: [4, 4], inputSize: 32)
    let model = try UniverSeg.randomlyInitialized(cfg, seed: 1)
    try s.write("w.safetensors", try SafeTensors.serialize(model.namedTensors, metadata: WeightsFile.metadata(for: cfg)))
    var entries: [String] = []
    for i in 0..<4 {
        let img = (0..<(40 * 30)).map { UInt8(($0 * (i + 5)) % 251) }
        let lab = (0..<(40 * 30)).map { UInt8(($0 / 40) < 15 ? 255 : 0) }
        try s.write("support/images/\(i).png", try PNGCodec.encodeGray8(img, width: 40, height: 30))
        try s.write("support/labels/\(i).png", try PNGCodec.encodeGray8(lab, width: 40, height: 30))
        entries.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
    }
    try s.write("support/support.json", Array(#"{"name":"syn","version":"1","label":"top","entries":[\#(entries.joined(separator: ","))]}"#.utf8))
    try s.write("q1.png", try PNGCodec.encodeGray8((0..<(50 * 21)).map { UInt8($0 % 256) }, width: 50, height: 21))
    try s.write("q2.png", try PNGCodec.encodeGray8((0..<(7 * 9)).map { UInt8($0 * 3) }, width: 7, height: 9))
}

@Suite(.serialized) struct SegmentCommandTests {
    @Test func writesMasksAtOriginalSizeAndLogits() throws {
        let s = try Scratch()
        try makeInputs(s)
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                "--out", s.path + "/out", "--logits", s.path + "/q1.png", s.path + "/q2.png"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(s.files(in: "out") == ["q1.logits.npy", "q1.mask.png", "q2.logits.npy", "q2.mask.png"])
        let m1 = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.path + "/out/q1.mask.png"))))
        #expect(m1.width == 50 && m1.height == 21)
        #expect(Set(m1.values).isSubset(of: [0, 255]))
        let m2 = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: s.path + "/out/q2.mask.png"))))
        #expect(m2.width == 7 && m2.height == 9)
        let npy = try Data(contentsOf: URL(fileURLWithPath: s.path + "/out/q1.logits.npy"))
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        #expect(String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self).contains("'shape': (32, 32)"))
        #expect(npy.count == 10 + headerLength + 4 * 32 * 32)
    }

    @Test func singlePassWithoutSupportSizeIsDeterministic() throws {
        let s = try Scratch()
        try makeInputs(s)
        var outputs: [Data] = []
        for run in 0..<2 {
            let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                    "--out", s.path + "/out\(run)", "--logits", "--seed", "\(run)", s.path + "/q1.png"])
            #expect(r.status == 0, "\(r.stderr)")
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: s.path + "/out\(run)/q1.logits.npy")))
        }
        #expect(outputs[0] == outputs[1])
    }

    @Test func ensembleWritesMeanProbabilities() throws {
        let s = try Scratch()
        try makeInputs(s)
        let r = try Worker.run(["segment", "--weights", s.path + "/w.safetensors", "--support", s.path + "/support",
                                "--out", s.path + "/out", "--logits", "--support-size", "2", "--ensemble", "3",
                                s.path + "/q2.png"])
        #expect(r.status == 0, "\(r.stderr)")
        let npy = try Data(contentsOf: URL(fileURLWithPath: s.path + "/out/q2.logits.npy"))
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        let bytes = [UInt8](npy)
        var values: [Float] = []
        for i in stride(from: 10 + headerLength, to: bytes.count, by: 4) {
            var bits = UInt32(bytes[i])
            bits |= UInt32(bytes[i + 1]) << 8
            bits |= UInt32(bytes[i + 2]) << 16
            bits |= UInt32(bytes[i + 3]) << 24
            values.append(Float(bitPattern: bits))
        }
        #expect(values.count == 1024)
        #expect(values.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test(arguments: ["missing-support", "corrupt-image", "bad-weights", "too-large-n", "missing-image"])
    func badInputFailsWithOneMessageAndWritesNothing(kind: String) throws {
        let s = try Scratch()
        try makeInputs(s)
        var support = s.path + "/support", weights = s.path + "/w.safetensors"
        var image = s.path + "/q1.png"
        var extra: [String] = []
        switch kind {
        case "missing-support": support = s.path + "/nowhere"
        case "corrupt-image":
            try s.write("bad.png", Array("not a png at all".utf8))
            image = s.path + "/bad.png"
        case "bad-weights":
            try s.write("bad.safetensors", [1, 0, 0, 0, 0, 0, 0, 0, 0x7b])
            weights = s.path + "/bad.safetensors"
        case "too-large-n": extra = ["--support-size", "9"]
        default: image = s.path + "/absent.png"
        }
        let r = try Worker.run(["segment", "--weights", weights, "--support", support, "--out", s.path + "/out"]
                               + extra + [s.path + "/q2.png", image])
        #expect(r.status != 0)
        #expect(r.stderr.contains("Error"), "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
        #expect(s.files(in: "out").isEmpty)
    }
}

@Suite struct ServeConfigurationTests {
    @Test(arguments: [
        (["--max-in-flight", "0"], [String: String](), "inference.max_in_flight"),
        (["--store", "ftp://x"], [:], "store.url"),
        ([], ["UNIVERSEG_KAFKA_DLQ_TOPIC": "universeg.results"], "topics must be different"),
        (["--config", "/nonexistent/config.json"], [:], "no such file"),
    ])
    func invalidConfigurationStopsBeforeConsuming(arguments: [String], environment: [String: String], expected: String) throws {
        let r = try Worker.run(["serve", "--brokers", "127.0.0.1:1"] + arguments, environment: environment)
        #expect(r.status != 0)
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(!r.stderr.contains("subscribed"))
    }
}
