public import SegModel
internal import SegKernels

/// Loading a UniverSeg network from a safetensors file.
///
/// The architecture is read from the metadata keys `encoder_widths` ("64,64,64,64"),
/// `decoder_widths` ("64,64,64") and `input_size` ("128"); when none is present, the v1
/// architecture is assumed (the authors' released checkpoint after conversion).
public struct WeightsFile: Sendable {
    public let path: String
    public let model: UniverSeg
    public let metadata: [String: String]
    /// Hex SHA-256 of the file bytes.
    public let sha256: String

    public static let maxFileBytes = 1 << 30

    public init(path: String) throws {
        let bytes = try FileIO.read(path, maxBytes: WeightsFile.maxFileBytes)
        do {
            try self.init(bytes: bytes, path: path)
        } catch let error as IOError {
            throw IOError(error.code, "\(path): \(error.message)")
        }
    }

    public init(bytes: [UInt8], path: String = "<memory>") throws {
        // The digest is taken on a second thread while the tensors are parsed (one thread, about
        // as long); the network is then built on every thread.
        var digest = ""
        var parsed: Result<SafeTensors.Contents, any Error>?
        Parallel.forEachItem(2, maxWorkers: 2) { _, item in
            if item == 0 {
                parsed = Result { try SafeTensors.parse(bytes) }
            } else {
                digest = SHA256.hex(bytes)
            }
        }
        guard let parsed else { throw IOError(.invalidWeights, "internal error: the weights were not parsed") }
        let contents = try parsed.get()
        let configuration = try WeightsFile.configuration(from: contents.metadata)
        do {
            self.model = try UniverSeg(configuration: configuration, tensors: contents.tensors)
        } catch let error as ModelError {
            throw IOError(.invalidWeights, error.message)
        }
        self.path = path
        self.metadata = contents.metadata
        self.sha256 = digest
    }

    /// A display name: the metadata "name", else the file name.
    public var name: String {
        if let n = metadata["name"], !n.isEmpty { return n }
        return path.split(separator: "/").last.map(String.init) ?? path
    }

    static func configuration(from metadata: [String: String]) throws -> UniverSegConfiguration {
        let keys = ["encoder_widths", "decoder_widths", "input_size"]
        if keys.allSatisfy({ metadata[$0] == nil }) { return .v1 }
        func widths(_ key: String) throws -> [Int] {
            guard let text = metadata[key] else { throw IOError(.invalidWeights, "metadata '\(key)' is missing") }
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            let values = parts.compactMap { Int($0.trimmingCharacters(in: " ")) }
            guard values.count == parts.count, !values.isEmpty else {
                throw IOError(.invalidWeights, "metadata '\(key)' = '\(text.prefix(64))' is not a comma-separated list of integers")
            }
            return values
        }
        guard let sizeText = metadata["input_size"], let size = Int(sizeText) else {
            throw IOError(.invalidWeights, "metadata 'input_size' is missing or not an integer")
        }
        let configuration = UniverSegConfiguration(
            encoderWidths: try widths("encoder_widths"), decoderWidths: try widths("decoder_widths"), inputSize: size)
        do {
            try configuration.validate()
        } catch let error as ModelError {
            throw IOError(.invalidWeights, "architecture in metadata: \(error.message)")
        }
        return configuration
    }

    /// Metadata keys describing `configuration`.
    public static func metadata(for configuration: UniverSegConfiguration) -> [String: String] {
        [
            "format": "universeg",
            "encoder_widths": configuration.encoderWidths.map(String.init).joined(separator: ","),
            "decoder_widths": configuration.decoderWidths.map(String.init).joined(separator: ","),
            "input_size": String(configuration.inputSize),
        ]
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return s
    }
}
