internal import Foundation
public import SegModel
internal import SegKernels

/// The `support.json` manifest of a support-set directory:
/// `{"name": ..., "version": ..., "label": ..., "entries": [{"image": "images/a.png", "label": "labels/a.png"}, ...]}`
/// with paths relative to the directory.
public struct SupportManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var image: String
        public var label: String
        public init(image: String, label: String) {
            self.image = image
            self.label = label
        }
    }

    /// A DICOM VOI window in modality units (HU for CT), applied to DICOM query images before the
    /// usual min-max scaling; PNG inputs ignore it.
    public struct Window: Codable, Sendable, Equatable {
        public var center: Double
        public var width: Double
        public init(center: Double, width: Double) {
            self.center = center
            self.width = width
        }
    }

    public var name: String?
    public var version: String?
    public var label: String?
    public var window: Window?
    public var entries: [Entry]

    public init(name: String? = nil, version: String? = nil, label: String? = nil, window: Window? = nil, entries: [Entry]) {
        self.name = name
        self.version = version
        self.label = label
        self.window = window
        self.entries = entries
    }
}

/// Limits on what a support set may contain.
public struct SupportSetLimits: Sendable, Equatable {
    public var maxEntries: Int
    public var maxManifestBytes: Int
    public var maxImageFileBytes: Int
    public var image: ImageLimits

    public init(maxEntries: Int = 256, maxManifestBytes: Int = 1 << 20, maxImageFileBytes: Int = 64 << 20,
                image: ImageLimits = ImageLimits()) {
        self.maxEntries = maxEntries
        self.maxManifestBytes = maxManifestBytes
        self.maxImageFileBytes = maxImageFileBytes
        self.image = image
    }
}

/// A support set read from disk and preprocessed for a model input size.
public struct LoadedSupportSet: Sendable {
    public let manifest: SupportManifest
    public let tensors: SupportTensors
    /// Hex SHA-256 over the manifest bytes and every image and label file, in manifest order.
    public let sha256: String
}

public enum SupportSetDirectory {
    /// Parses and validates manifest bytes (size, JSON shape, entry count, relative paths
    /// that stay inside the directory).
    public static func parseManifest(_ bytes: [UInt8], limits: SupportSetLimits = SupportSetLimits()) throws -> SupportManifest {
        guard bytes.count <= limits.maxManifestBytes else {
            throw invalid("support.json is \(bytes.count) bytes, above the limit of \(limits.maxManifestBytes)")
        }
        let manifest: SupportManifest
        do {
            manifest = try JSONDecoder().decode(SupportManifest.self, from: Data(bytes))
        } catch {
            throw invalid("support.json is not a valid manifest: \(describe(error))")
        }
        guard !manifest.entries.isEmpty else { throw invalid("support.json lists no entries") }
        if let window = manifest.window {
            guard window.center.isFinite, window.width.isFinite, window.width >= 1 else {
                throw invalid("support.json: window.width must be at least 1 and both window values finite")
            }
        }
        if let label = manifest.label, label.count > 64 || label.contains(where: { $0.isNewline || $0 == "\\" }) {
            throw invalid("support.json: label must be at most 64 characters without line breaks or backslashes")
        }
        guard manifest.entries.count <= limits.maxEntries else {
            throw invalid("support.json lists \(manifest.entries.count) entries, above the limit of \(limits.maxEntries)")
        }
        for (i, entry) in manifest.entries.enumerated() {
            try checkRelativePath(entry.image, entry: i, field: "image")
            try checkRelativePath(entry.label, entry: i, field: "label")
        }
        return manifest
    }

    /// Loads `directory/support.json` and every image and label it names, preprocessed to
    /// `size` x `size` (see `Preprocess`). Rejects sets whose labels are all empty. `threads`
    /// threads decode entries side by side (see `build`).
    public static func load(directory: String, size: Int, limits: SupportSetLimits = SupportSetLimits(),
                            threads: Int = 1) throws -> LoadedSupportSet {
        let manifestPath = directory + "/support.json"
        let manifestBytes: [UInt8]
        do {
            manifestBytes = try FileIO.read(manifestPath, maxBytes: limits.maxManifestBytes)
        } catch let error as IOError where error.code == .fileTooLarge {
            throw invalid(error.message)
        }
        let manifest = try parseManifest(manifestBytes, limits: limits)
        return try build(manifest: manifest, manifestBytes: manifestBytes, size: size, limits: limits,
                         threads: threads) { relative in
            try FileIO.read(directory + "/" + relative, maxBytes: limits.maxImageFileBytes)
        }
    }

    /// Builds a support set from a manifest, reading each file through `readFile`
    /// (a relative path, already validated). Used for directories and for remote stores.
    ///
    /// Files are read in manifest order on the calling thread (`readFile` need not be
    /// thread-safe); with `threads` > 1, windows of entries are then hashed, decoded and
    /// preprocessed on up to `threads` threads. Whatever the thread count, the result and the
    /// error (the first failing entry in manifest order) are the same.
    public static func build(manifest: SupportManifest, manifestBytes: [UInt8], size: Int,
                             limits: SupportSetLimits = SupportSetLimits(), threads: Int = 1,
                             readFile: (String) throws -> [UInt8]) throws -> LoadedSupportSet {
        var hashed = manifestBytes
        var images: [[Float]] = []
        var labels: [[Float]] = []
        let entries = manifest.entries
        images.reserveCapacity(entries.count)
        labels.reserveCapacity(entries.count)
        // A window bounds the file bytes held at once.
        let window = max(1, threads) * 4
        var start = 0
        while start < entries.count {
            let range = start..<min(entries.count, start + window)
            var files: [(image: [UInt8], label: [UInt8])] = []
            var readError: (any Error)?
            for i in range {
                do {
                    files.append((try readEntryFile(entries[i].image, entry: i, readFile),
                                  try readEntryFile(entries[i].label, entry: i, readFile)))
                } catch {
                    readError = error  // entries before it are still decoded: their errors come first
                    break
                }
            }
            var prepared = [Result<PreparedEntry, any Error>?](repeating: nil, count: files.count)
            prepared.withUnsafeMutableBufferPointer { slots in
                Parallel.forEachItem(files.count, maxWorkers: max(1, threads)) { _, k in
                    slots[k] = Result {
                        try prepareEntry(files[k], entry: range.lowerBound + k, size: size, limits: limits.image)
                    }
                }
            }
            for result in prepared {
                guard let entry = try result?.get() else { continue }
                hashed += entry.digest
                images.append(entry.image)
                labels.append(entry.label)
            }
            if let readError { throw readError }
            start = range.upperBound
        }
        guard labels.contains(where: { $0.contains(where: { $0 > 0 }) }) else {
            throw invalid("every label of the support set is empty (no foreground pixel)")
        }
        let tensors = try SupportTensors(images: images, labels: labels, size: size)
        return LoadedSupportSet(manifest: manifest, tensors: tensors, sha256: SHA256.hex(hashed))
    }

    /// One entry hashed, decoded and preprocessed.
    private struct PreparedEntry {
        let digest: [UInt8]
        let image: [Float]
        let label: [Float]
    }

    private static func prepareEntry(_ files: (image: [UInt8], label: [UInt8]), entry: Int, size: Int,
                                     limits: ImageLimits) throws -> PreparedEntry {
        let digest = SHA256.digest(files.image) + SHA256.digest(files.label)
        let image = try decodeEntry(files.image, entry: entry, field: "image", limits: limits)
        let label = try decodeEntry(files.label, entry: entry, field: "label", limits: limits)
        return PreparedEntry(digest: digest, image: Preprocess.image(image, size: size), label: Preprocess.label(label, size: size))
    }

    private static func readEntryFile(_ path: String, entry: Int, _ readFile: (String) throws -> [UInt8]) throws -> [UInt8] {
        do {
            return try readFile(path)
        } catch let error as IOError {
            throw invalid("entry \(entry): \(error.message)")
        }
    }

    private static func decodeEntry(_ bytes: [UInt8], entry: Int, field: String, limits: ImageLimits) throws -> GrayImage {
        do {
            return try PNGCodec.decode(bytes, limits: limits)
        } catch let error as IOError {
            throw invalid("entry \(entry) \(field): \(error.message)")
        }
    }

    static func checkRelativePath(_ path: String, entry: Int, field: String) throws {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        let ok = !path.isEmpty && path.utf8.count <= 512 && !path.hasPrefix("/")
            && !path.contains("\0") && !path.contains("\\")
            && components.allSatisfy { !$0.isEmpty && $0 != ".." && $0 != "." }
        guard ok else {
            throw invalid("entry \(entry) \(field) path is not a plain relative path inside the support set")
        }
    }

    private static func invalid(_ message: String) -> IOError { IOError(.invalidSupportSet, message) }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "wrong type at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: return "malformed JSON"
        default: return "unreadable"
        }
    }
}
