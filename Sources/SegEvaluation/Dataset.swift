internal import Foundation
package import SegIO
internal import SegModel

/// A labelled image collection laid out as `DIR/images/ID.png` and `DIR/labels/LABEL/ID.png`
/// (an image and one label mask per label name, with the same ID), preprocessed for one model
/// input size.
package struct LabeledDataset: Sendable {
    package struct Item: Sendable {
        package let id: String
        /// Model input (size x size, [0, 1]).
        package let image: [Float]
        /// Model-size binary label (support input).
        package let label: [Float]
        /// Ground truth at the label file's own resolution (0/1).
        package let truth: [Float]
        package let width: Int
        package let height: Int
    }

    package let name: String
    package let labelName: String
    package let size: Int
    package let items: [Item]

    /// Loads every ID that has both an image and a label, sorted by ID.
    package init(directory: String, label: String, size: Int, limits: ImageLimits = ImageLimits()) throws {
        let fm = FileManager.default
        let imageDir = directory + "/images", labelDir = directory + "/labels/" + label
        guard let labelFiles = try? fm.contentsOfDirectory(atPath: labelDir) else {
            let available = (try? fm.contentsOfDirectory(atPath: directory + "/labels"))?.sorted().joined(separator: ", ") ?? "none"
            throw IOError(.fileNotFound, "\(labelDir): no such label directory (labels: \(available))")
        }
        let ids = labelFiles.filter { $0.hasSuffix(".png") && fm.fileExists(atPath: imageDir + "/" + $0) }
            .map { String($0.dropLast(4)) }.sorted()
        guard !ids.isEmpty else { throw IOError(.fileNotFound, "\(directory): no image with a '\(label)' label") }
        var items: [Item] = []
        for id in ids {
            let image = try PNGCodec.decode(try FileIO.read(imageDir + "/\(id).png", maxBytes: 64 << 20), limits: limits)
            let truth = try PNGCodec.decode(try FileIO.read(labelDir + "/\(id).png", maxBytes: 64 << 20), limits: limits)
            items.append(Item(id: id, image: Preprocess.image(image, size: size), label: Preprocess.label(truth, size: size),
                              truth: truth.values.map { $0 != 0 ? 1 : 0 }, width: truth.width, height: truth.height))
        }
        self.name = URL(fileURLWithPath: directory).standardizedFileURL.deletingLastPathComponent().lastPathComponent
        self.labelName = label
        self.size = size
        self.items = items
    }

    /// A seeded split: `supportFraction` of the items (rounded) form the support pool, the
    /// rest are test queries. Returns item indices.
    package func split(seed: UInt64, supportFraction: Double = 0.7) -> (pool: [Int], test: [Int]) {
        var rng = SeededGenerator(seed: seed)
        let order = rng.sample(items.count, from: items.count)
        let poolCount = min(items.count - 1, max(1, Int((Double(items.count) * supportFraction).rounded())))
        return (Array(order[0..<poolCount]), Array(order[poolCount...]))
    }
}
