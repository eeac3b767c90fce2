import ArgumentParser
import Foundation
import SegIO
import SegModel

/// Writes a ready-to-use sample: a support-set directory, query images and their ground truth.
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Write a sample support set, query images and ground truth (real data when available).",
        discussion: """
            With DATASETS/wbc-cv/128 present (held-out blood-smear images, see its SOURCE.md), \
            the sample uses real images: a seeded choice of support entries and distinct query \
            images for LABEL. Otherwise it writes synthetic images (dark textured blobs on a noisy \
            background) and says so. Layout: OUT/support/support.json (+ images/, labels/), \
            OUT/queries/ID.png, OUT/truth/ID.png.
            """)

    @Option(help: "Output directory.")
    var out: String

    @Option(help: "Datasets directory (default: ../shared/datasets from the working directory).")
    var datasets: String = "../shared/datasets"

    @Option(help: "Label of wbc-cv to use (nucleus, cytoplasm or cell).")
    var label: String = "nucleus"

    @Option(help: "Support entries.")
    var support: Int = 16

    @Option(help: "Query images.")
    var queries: Int = 4

    @Option(help: "Seed of the choice of images.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (1...256).contains(support), (1...256).contains(queries) else {
            throw ValidationError("--support and --queries must be in 1...256")
        }
    }

    func run() throws {
        let fm = FileManager.default
        for sub in ["support/images", "support/labels", "queries", "truth"] {
            try fm.createDirectory(atPath: "\(out)/\(sub)", withIntermediateDirectories: true)
        }
        let wbc = "\(datasets)/wbc-cv/128"
        var entries: [SupportManifest.Entry] = []
        var name = "", source = ""
        if fm.fileExists(atPath: "\(wbc)/labels/\(label)") {
            let ids = try fm.contentsOfDirectory(atPath: "\(wbc)/labels/\(label)").filter { $0.hasSuffix(".png") }.sorted()
            guard ids.count >= support + queries else {
                throw ValidationError("wbc-cv has \(ids.count) labelled images, fewer than --support + --queries")
            }
            var rng = SeededGenerator(seed: seed)
            let chosen = rng.sample(support + queries, from: ids.count).map { ids[$0] }
            for id in chosen.prefix(support) {
                try fm.copyItem(atPath: "\(wbc)/images/\(id)", toPath: "\(out)/support/images/\(id)")
                try fm.copyItem(atPath: "\(wbc)/labels/\(label)/\(id)", toPath: "\(out)/support/labels/\(id)")
                entries.append(.init(image: "images/\(id)", label: "labels/\(id)"))
            }
            for id in chosen.suffix(queries) {
                try fm.copyItem(atPath: "\(wbc)/images/\(id)", toPath: "\(out)/queries/\(id)")
                try fm.copyItem(atPath: "\(wbc)/labels/\(label)/\(id)", toPath: "\(out)/truth/\(id)")
            }
            name = "wbc-cv-\(label)"
            source = "real images: wbc-cv (blood smear, CellaVision; GPL-3.0, see \(datasets)/wbc-cv/SOURCE.md), label '\(label)'"
        } else {
            var rng = SeededGenerator(seed: seed)
            for i in 0..<(support + queries) {
                let (image, mask) = Self.syntheticPair(&rng, size: 128)
                let id = String(format: "syn%03d.png", i)
                let isSupport = i < support
                try FileIO.writeAtomically(try PNGCodec.encodeGray8(image, width: 128, height: 128),
                                           to: isSupport ? "\(out)/support/images/\(id)" : "\(out)/queries/\(id)")
                try FileIO.writeAtomically(try PNGCodec.encodeGray8(mask, width: 128, height: 128),
                                           to: isSupport ? "\(out)/support/labels/\(id)" : "\(out)/truth/\(id)")
                if isSupport { entries.append(.init(image: "images/\(id)", label: "labels/\(id)")) }
            }
            name = "synthetic-blobs"
            source = "synthetic images (no \(wbc) found): dark textured blobs"
        }
        let manifest = SupportManifest(name: name, version: "1", label: label, entries: entries)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileIO.writeAtomically([UInt8](try encoder.encode(manifest)), to: "\(out)/support/support.json")
        print("sample: \(source)")
        print("sample: \(entries.count) support entries in \(out)/support, \(queries) queries in \(out)/queries, truth in \(out)/truth")
    }

    /// A dark ellipse with its own texture on a brighter noisy background, and its mask.
    static func syntheticPair(_ rng: inout SeededGenerator, size: Int) -> ([UInt8], [UInt8]) {
        let cx = 30 + rng.nextUniform() * Double(size - 60), cy = 30 + rng.nextUniform() * Double(size - 60)
        let rx = 12 + rng.nextUniform() * 20, ry = 12 + rng.nextUniform() * 20
        let angle = rng.nextUniform() * Double.pi
        var image = [UInt8](repeating: 0, count: size * size), mask = image
        for y in 0..<size {
            for x in 0..<size {
                let dx = Double(x) - cx, dy = Double(y) - cy
                let u = (dx * cos(angle) + dy * sin(angle)) / rx, v = (-dx * sin(angle) + dy * cos(angle)) / ry
                let inside = u * u + v * v < 1
                let texture = 12 * sin(Double(x) * 0.4) * cos(Double(y) * 0.3)
                let base = inside ? 70 + texture : 170 + 0.3 * texture
                let noise = (rng.nextUniform() - 0.5) * 30
                image[y * size + x] = UInt8(max(0, min(255, base + noise)))
                mask[y * size + x] = inside ? 255 : 0
            }
        }
        return (image, mask)
    }
}
