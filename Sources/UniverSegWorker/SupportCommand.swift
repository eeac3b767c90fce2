import ArgumentParser
import Foundation
import SegDICOM
import SegDICOMweb
import SegIO
import SegService

struct SupportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "support",
        abstract: "Manage support sets in a directory store.",
        subcommands: [SupportImportCommand.self])
}

/// Builds a support set from a DICOM image series and a SEG of it on a DICOMweb server.
struct SupportImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a support set from a DICOM series and its SEG over DICOMweb.",
        discussion: """
            Fetches the image series and the SEG series (QIDO-RS, WADO-RS), maps every SEG frame of \\
            --segment to the image frame it references, and writes STORE/ID/VERSION: images/NNNN.png \\
            (8-bit: the modality values through the window when --window-center/--window-width are \\
            given, else min-max scaled per frame), labels/NNNN.png (0/255) in slice order, and \\
            support.json (label: --label, else the segment's label; the window when given). Then \\
            STORE/ID/LATEST names VERSION. Only a directory store (a path or file://) is writable; \\
            an existing version is never overwritten.
            """)

    @Option(help: ArgumentHelp("The DICOMweb server, as NAME=URL (NAME appears in messages).", valueName: "NAME=URL"))
    var server: String
    @Option(help: ArgumentHelp("StudyInstanceUID of both series.", valueName: "UID")) var study: String
    @Option(name: .customLong("image-series"), help: ArgumentHelp("SeriesInstanceUID of the images.", valueName: "UID"))
    var imageSeries: String
    @Option(name: .customLong("seg-series"), help: ArgumentHelp("SeriesInstanceUID of the SEG.", valueName: "UID"))
    var segSeries: String
    @Option(help: "Segment number in the SEG.") var segment: Int = 1
    @Option(help: "Support set ID ([A-Za-z0-9._-]).") var id: String
    @Option(help: "Version to create ([A-Za-z0-9._-]); must not exist yet.") var version: String
    @Option(help: "Support-set store: a directory path or file:///path.") var store: String
    @Option(name: .customLong("window-center"), help: "VOI window center in modality units (with --window-width).")
    var windowCenter: Double?
    @Option(name: .customLong("window-width"), help: "VOI window width, at least 1 (with --window-center).")
    var windowWidth: Double?
    @Option(help: "Label of the support set (default: the segment's label).") var label: String?
    @Option(help: "Seconds for each DICOMweb exchange.") var timeout: Double = 30

    /// Instances of the SEG series this command reads at most.
    static let maxSEGInstances = 64
    /// Bytes of one series' instances together that this command reads at most.
    static let maxSeriesBytes = 1 << 30

    func validate() throws {
        guard parsedServer() != nil else {
            throw ValidationError("--server must be NAME=URL with NAME of [A-Za-z0-9._-] and an http(s) URL")
        }
        for (flag, uid) in [("--study", study), ("--image-series", imageSeries), ("--seg-series", segSeries)] {
            guard DICOMUID.isValid(uid) else { throw ValidationError("\(flag) must be a valid DICOM UID (digits and dots, at most 64 characters)") }
        }
        guard (1...65535).contains(segment) else { throw ValidationError("--segment must be in 1...65535") }
        guard SegmentationRequest.isValidName(id) else { throw ValidationError("--id must be 1-128 characters of [A-Za-z0-9._-]") }
        guard SegmentationRequest.isValidName(version), version != "LATEST" else {
            throw ValidationError("--version must be 1-128 characters of [A-Za-z0-9._-] (and not LATEST)")
        }
        switch (windowCenter, windowWidth) {
        case (nil, nil): break
        case let (center?, width?):
            guard center.isFinite, width.isFinite, width >= 1 else {
                throw ValidationError("--window-width must be at least 1 and both window values finite")
            }
        default: throw ValidationError("give --window-center and --window-width together")
        }
        if let label, !Self.isValidLabel(label) {
            throw ValidationError("--label must be 1-64 characters without line breaks or backslashes")
        }
        guard timeout.isFinite, timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in (0, 3600]") }
    }

    static func isValidLabel(_ label: String) -> Bool {
        (1...64).contains(label.count) && !label.contains(where: { $0.isNewline || $0 == "\\" || ($0.asciiValue.map { $0 < 32 } ?? false) })
    }

    func parsedServer() -> (name: String, url: URL)? {
        let parts = server.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, SegmentationRequest.isValidName(parts[0]),
              parts[1].hasPrefix("http://") || parts[1].hasPrefix("https://"),
              let url = URL(string: parts[1]), url.host != nil else { return nil }
        return (parts[0], url)
    }

    func run() throws {
        guard let (name, url) = parsedServer() else { throw ValidationError("--server must be NAME=URL") }
        let root = try storeDirectory()
        let setDirectory = "\(root)/\(id)", target = "\(setDirectory)/\(version)"
        guard !FileManager.default.fileExists(atPath: target) else {
            throw CLIError("\(target) exists: a support set version is never overwritten; choose another --version")
        }
        let client = DICOMwebClient(server: DICOMwebServer(name: name, baseURL: url, timeoutSeconds: timeout))
        let limits = DICOMLimits()
        let window = windowCenter.flatMap { c in windowWidth.map { SupportManifest.Window(center: c, width: $0) } }

        // The image series, checked to be the one asked for.
        let images = try fetch(client, series: imageSeries, limit: limits.maxFrames, limits: limits).map { bytes in
            let instance = try DICOMSegmenting.parse(bytes, limits: limits)
            guard instance.studyInstanceUID == study, instance.seriesInstanceUID == imageSeries else {
                throw CLIError("\(name): an image instance the server returned is not in the requested study and series")
            }
            return instance
        }
        let order = try DICOMSegmenting.sliceOrderedFrames(images, limits: limits)
        let bySOP = Dictionary(images.enumerated().map { ($1.sopInstanceUID, $0) }, uniquingKeysWith: { a, _ in a })

        // Every frame of the segment, mapped to its source frame.
        var labels: [DICOMSegmenting.FrameRef: [UInt8]] = [:]
        var segmentLabel: String?
        for bytes in try fetch(client, series: segSeries, limit: Self.maxSEGInstances, limits: limits) {
            let contents: SegmentationContents
            do {
                contents = try SegmentationReader.read(bytes, limits: limits)
            } catch {
                throw CLIError("\(name): an instance of the SEG series is not a readable Segmentation: \(error.message)")
            }
            if segmentLabel == nil { segmentLabel = contents.segmentLabels[segment] }
            for frame in contents.frames where frame.segmentNumber == segment {
                guard let sop = frame.sourceSOPInstanceUID, let index = bySOP[sop] else {
                    throw CLIError("a SEG frame of segment \(segment) references no instance of the image series")
                }
                let source = images[index]
                let sourceFrame = frame.sourceFrame ?? 0
                guard frame.sourceFrame != nil || source.numberOfFrames == 1, sourceFrame < source.numberOfFrames else {
                    throw CLIError("a SEG frame of segment \(segment) references no frame of its multi-frame source")
                }
                guard contents.rows == source.rows, contents.columns == source.columns, frame.mask.count == source.rows * source.columns else {
                    throw CLIError("the SEG is \(contents.columns)x\(contents.rows), its source \(source.columns)x\(source.rows)")
                }
                let ref = DICOMSegmenting.FrameRef(instance: index, frame: sourceFrame)
                let previous = labels[ref] ?? [UInt8](repeating: 0, count: frame.mask.count)
                labels[ref] = zip(previous, frame.mask).map { $0 != 0 || $1 != 0 ? 255 : 0 }
            }
        }
        guard !labels.isEmpty else { throw CLIError("the SEG series has no frame of segment \(segment)") }
        guard labels.values.contains(where: { $0.contains(where: { $0 != 0 }) }) else {
            throw CLIError("every frame of segment \(segment) is empty: a support set needs foreground")
        }

        // The set, written beside its final place and moved there whole.
        let staging = "\(setDirectory)/.import-\(version)-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try makeDirectory(staging + "/images")
        try makeDirectory(staging + "/labels")
        var entries: [SupportManifest.Entry] = []
        for ref in order {
            guard let mask = labels[ref] else { continue }
            let source = images[ref.instance]
            let image = try DICOMSegmenting.image(source, frame: ref.frame, window: window)
            let scaled = window == nil ? Preprocess.normalizeMinMax(image.values) : image.values
            let pixels = scaled.map { UInt8(($0.isFinite ? min(max($0, 0), 1) : 0) * 255 + 0.5) }
            let file = String(format: "%04d.png", entries.count + 1)
            try FileIO.writeAtomically(try PNGCodec.encodeGray8(pixels, width: source.columns, height: source.rows),
                                       to: "\(staging)/images/\(file)")
            try FileIO.writeAtomically(try PNGCodec.encodeGray8(mask, width: source.columns, height: source.rows),
                                       to: "\(staging)/labels/\(file)")
            entries.append(.init(image: "images/\(file)", label: "labels/\(file)"))
        }
        let setLabel = label ?? segmentLabel.map(DICOMSegmenting.lo).flatMap { Self.isValidLabel($0) ? $0 : nil }
        let manifest = SupportManifest(name: id, version: version, label: setLabel, window: window, entries: entries)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileIO.writeAtomically([UInt8](try encoder.encode(manifest)) + [10], to: "\(staging)/support.json")
        _ = try SupportSetDirectory.load(directory: staging, size: 64)  // the set as serve will read it

        guard !FileManager.default.fileExists(atPath: target) else {
            throw CLIError("\(target) appeared while importing: not overwritten")
        }
        guard rename(staging, target) == 0 else {
            throw CLIError("\(target): cannot move the imported set into place (errno \(errno))")
        }
        try FileIO.writeAtomically(Array("\(version)\n".utf8), to: "\(setDirectory)/LATEST")
        print("\(id)@\(version): \(entries.count) entries of segment \(segment)\(setLabel.map { " (\($0))" } ?? "") -> \(target); LATEST -> \(version)")
    }

    /// The store root, which must be an existing directory.
    private func storeDirectory() throws -> String {
        let backend: SupportSetStore.Backend
        do {
            backend = try SupportSetStore(url: store).backend
        } catch let error as ServiceError {
            throw CLIError("--store: \(error.reason)")
        }
        switch backend {
        case .http:
            throw CLIError("--store: an http(s) store is read-only here; import into its directory (a path or file:///path)")
        case .directory(let root):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("--store: \(root) is not an existing directory")
            }
            return root
        }
    }

    /// Every instance of `series` (Part-10 bytes): at most `limit` instances and `maxSeriesBytes` together.
    private func fetch(_ client: DICOMwebClient, series: String, limit: Int, limits: DICOMLimits) throws -> [[UInt8]] {
        do {
            var total = 0
            var instances: [[UInt8]] = []
            for uid in try client.instanceUIDs(study: study, series: series, limit: limit) {
                let remaining = Self.maxSeriesBytes - total
                guard remaining > 0 else { throw CLIError("a series is above \(Self.maxSeriesBytes) bytes") }
                let bytes = try client.retrieveInstance(study: study, series: series, instance: uid,
                                                        maxBytes: min(limits.maxInstanceBytes, remaining))
                total += bytes.count
                instances.append(bytes)
            }
            return instances
        } catch let error as DICOMwebError {
            throw CLIError(error.message)
        }
    }

    private func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CLIError("\(path): cannot create the directory")
        }
    }
}
