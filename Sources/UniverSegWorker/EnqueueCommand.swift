import ArgumentParser
import Foundation
import SegDICOMweb
import SegIO
import SegKafka
import SegService
import Synchronization

/// The producer side a PACS-adjacent pipeline scripts: one request per image, request ids on
/// stdout, and with --wait the results collected and the masks written.
struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Send segmentation requests for PNG images (files or directories) or a DICOM series to Kafka.",
        discussion: """
            Prints one line per request: REQUEST_ID<TAB>FILE. With --wait, reads the results topic \
            until every request has a result (or --timeout passes), writes each mask to \
            --out/<file name>, prints one line per result and exits 0 only if every request \
            succeeded. With --ground-truth DIR, DIR/<file name> is sent as ground truth and the \
            results carry the Dice score.

            With --dicomweb-server NAME --study UID --series UID (and no FILE), sends one request \
            for that series on the DICOMweb server the worker knows as NAME (its dicomweb.servers); \
            the worker segments every slice and stores one SEG there. With --wait it prints \
            REQUEST_ID<TAB>ok<TAB>study=UID<TAB>series=UID<TAB>sop_instance=UID<TAB>frames=N\
            <TAB>server=NAME<TAB>retrieve_url=URL (a SEG returned inline instead of stored is \
            written to --out/REQUEST_ID.seg.dcm), or REQUEST_ID<TAB>error<TAB>CODE<TAB>REASON.
            """)

    @Option(name: .customLong("support-set"), help: "Support set ID or ID@VERSION (default version: the store's LATEST).")
    var supportSet: String
    @Argument(help: "PNG files or directories of PNG files.") var inputs: [String] = []
    @Option(name: .customLong("dicomweb-server"), help: ArgumentHelp(
        "Segment a DICOM series instead: the DICOMweb server's name as the worker knows it.", valueName: "NAME"))
    var dicomwebServer: String?
    @Option(help: ArgumentHelp("StudyInstanceUID of the series (with --dicomweb-server).", valueName: "UID")) var study: String?
    @Option(help: ArgumentHelp("SeriesInstanceUID of the series (with --dicomweb-server).", valueName: "UID")) var series: String?
    @Option(help: "Kafka bootstrap servers.") var brokers = "127.0.0.1:9092"
    @Option(name: .customLong("requests-topic")) var requestsTopic = "universeg.requests"
    @Option(name: .customLong("results-topic")) var resultsTopic = "universeg.results"
    @Option(name: .customLong("ground-truth"), help: "Directory with ground-truth masks named like the images.") var groundTruth: String?
    @Option(name: .customLong("support-size"), help: "Support examples per forward pass (default: all).") var supportSize: Int?
    @Option(help: "Support subsets averaged per image (K).") var ensemble: Int?
    @Option(help: "Seed for drawing support subsets.") var seed: UInt64?
    @Option(help: "Probability threshold for the mask.") var threshold: Double?
    @Option(name: .customLong("id-prefix"), help: "Prefix of generated request ids.") var idPrefix = "enq"
    @Flag(help: "Wait for the results and write the masks.") var wait = false
    @Option(help: "Directory for masks (with --wait).") var out = "masks"
    @Option(help: "Seconds to wait for all results (with --wait).") var timeout: Double = 300
    @Option(name: .customLong("kafka-property"), help: "Extra librdkafka property NAME=VALUE (repeatable).")
    var kafkaProperties: [String] = []

    func validate() throws {
        let parts = supportSet.split(separator: "@", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ SegmentationRequest.isValidName(String($0)) }) else {
            throw ValidationError("--support-set must be ID or ID@VERSION with [A-Za-z0-9._-]")
        }
        guard SegmentationRequest.isValidRequestID(idPrefix), idPrefix.count <= 64 else {
            throw ValidationError("--id-prefix must be 1-64 characters of [A-Za-z0-9._:-]")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let dicomwebServer {
            guard SegmentationRequest.isValidName(dicomwebServer) else {
                throw ValidationError("--dicomweb-server must be a server name of 1-128 characters of [A-Za-z0-9._-] (the worker's dicomweb.servers), not a URL")
            }
            guard let study, DICOMUID.isValid(study) else { throw ValidationError("--study must be a valid DICOM UID (digits and dots, at most 64 characters)") }
            guard let series, DICOMUID.isValid(series) else { throw ValidationError("--series must be a valid DICOM UID (digits and dots, at most 64 characters)") }
            guard inputs.isEmpty else { throw ValidationError("give either FILEs or --dicomweb-server/--study/--series, not both") }
            guard groundTruth == nil else { throw ValidationError("--ground-truth applies to PNG files only") }
        } else {
            guard study == nil, series == nil else { throw ValidationError("--study and --series need --dicomweb-server") }
            guard !inputs.isEmpty else { throw ValidationError("give PNG files or directories, or --dicomweb-server NAME --study UID --series UID") }
        }
    }

    struct Item {
        let requestID: String
        let file: String
    }

    func run() throws {
        let files = dicomwebServer == nil ? try Self.pngFiles(inputs) : ["dicomweb:" + (dicomwebServer ?? "")]
        guard !files.isEmpty else { throw ValidationError("no PNG files in \(inputs.joined(separator: " "))") }
        var properties: [String: String] = [:]
        for p in kafkaProperties {
            guard let eq = p.firstIndex(of: "=") else { throw ValidationError("--kafka-property expects NAME=VALUE") }
            properties[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        let common = KafkaConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init), properties)
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        // Where the results of these requests will start, captured before anything is sent.
        let startOffsets = wait ? try Self.resultStartOffsets(common, topic: resultsTopic, since: started - 5000) : [:]

        let producer = try KafkaProducer(configuration: common)
        let parts = supportSet.split(separator: "@").map(String.init)
        let session = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        var items: [Item] = []
        let failures = Mutex<[String]>([])
        for (index, file) in files.enumerated() {
            let stem = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
            let safeStem = String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" }.prefix(48))
            let requestID = "\(idPrefix)-\(session)-\(index)-\(safeStem)"
            let image: [String: Any]
            if let dicomwebServer, let study, let series {
                image = ["dicomweb": ["server": dicomwebServer, "study_uid": study, "series_uid": series]]
            } else {
                image = ["png_base64": Data(try FileIO.read(file, maxBytes: 32 << 20)).base64EncodedString()]
            }
            var request: [String: Any] = [
                "request_id": requestID,
                "support_set": parts.count == 2 ? ["id": parts[0], "version": parts[1]] : ["id": parts[0]],
                "image": image,
            ]
            var options: [String: Any] = [:]
            if let supportSize { options["support_size"] = supportSize }
            if let ensemble { options["ensemble"] = ensemble }
            if let seed { options["seed"] = seed }
            if let threshold { options["threshold"] = threshold }
            if !options.isEmpty { request["options"] = options }
            if let groundTruth {
                let truth = URL(fileURLWithPath: groundTruth).appendingPathComponent(URL(fileURLWithPath: file).lastPathComponent).path
                request["ground_truth"] = ["png_base64": Data(try FileIO.read(truth, maxBytes: 32 << 20)).base64EncodedString()]
            }
            let value = try JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])
            try producer.send(topic: requestsTopic, key: Array(requestID.utf8), value: [UInt8](value)) { result in
                if case .failure(let error) = result { failures.withLock { $0.append("\(requestID): \(error)") } }
            }
            items.append(Item(requestID: requestID, file: file))
        }
        try producer.flush(timeout: .seconds(60))
        try producer.close()
        let failed = failures.withLock { $0 }
        guard failed.isEmpty else {
            throw ValidationError("the broker did not acknowledge \(failed.count) requests: \(failed.prefix(3).joined(separator: "; "))")
        }
        for item in items { print("\(item.requestID)\t\(item.file)") }
        fflush(nil)
        guard wait else { return }
        try collect(items, common: common, startOffsets: startOffsets)
    }

    /// Reads the results topic from `startOffsets` until every request has a result.
    func collect(_ items: [Item], common: KafkaConfiguration, startOffsets: [TopicPartition: Int64]) throws {
        var consumerConfig = common
        consumerConfig["group.id"] = "universeg-enqueue-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        consumerConfig["enable.auto.commit"] = "false"
        let consumer = try KafkaConsumer(configuration: consumerConfig)
        try consumer.assign(startOffsets.map { ($0.key, $0.value) })
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var pending = Dictionary(uniqueKeysWithValues: items.map { ($0.requestID, $0) })
        var ok = 0, errors = 0
        var dice: [Double] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let decoder = JSONDecoder()
        while !pending.isEmpty && ContinuousClock.now < deadline {
            guard let message = consumer.poll(timeout: .milliseconds(200)), message.error == nil,
                  let key = message.keyString, let item = pending[key], let value = message.value,
                  let result = try? decoder.decode(SegmentationResult.self, from: Data(value)) else { continue }
            pending[key] = nil
            let name = URL(fileURLWithPath: item.file).lastPathComponent
            if result.status == "ok", let seg = result.dicomSeg {
                ok += 1
                var fields = [key, "ok", "study=\(seg.studyUID)", "series=\(seg.seriesUID)", "sop_instance=\(seg.sopInstanceUID)",
                              "frames=\(seg.frames)", "server=\(seg.server ?? "-")", "retrieve_url=\(seg.retrieveURL ?? "-")"]
                if let base64 = seg.base64, let bytes = Data(base64Encoded: base64) {
                    let path = URL(fileURLWithPath: out).appendingPathComponent("\(key).seg.dcm").path
                    try bytes.write(to: URL(fileURLWithPath: path))
                    fields.append("file=\(path)")
                }
                print(fields.joined(separator: "\t"))
            } else if result.status == "ok", let mask = result.mask, let png = Data(base64Encoded: mask.pngBase64) {
                let path = URL(fileURLWithPath: out).appendingPathComponent(name).path
                try png.write(to: URL(fileURLWithPath: path))
                ok += 1
                var line = "\(key)\tok\t\(path)\tforeground \(String(format: "%.3f", result.foregroundFraction ?? 0))"
                if let d = result.dice {
                    dice.append(d)
                    line += "\tdice \(String(format: "%.1f", d * 100))"
                }
                if let t = result.timingsMs { line += "\tinference \(Int(t.inference)) ms" }
                print(line)
            } else {
                errors += 1
                print("\(key)\terror\t\(result.error?.code.rawValue ?? "?")\t\(result.error?.reason ?? "")")
            }
            fflush(nil)
        }
        try consumer.close()
        var summary = "results: \(ok) ok, \(errors) errors, \(pending.count) missing"
        if !dice.isEmpty { summary += String(format: ", mean Dice %.1f over %d images", dice.reduce(0, +) / Double(dice.count) * 100, dice.count) }
        print(summary)
        if !pending.isEmpty || errors > 0 { throw ExitCode(1) }
    }

    /// The offset of each results partition where records newer than `since` (ms) begin:
    /// offsetsForTimes, or the high watermark when the broker has nothing that new.
    static func resultStartOffsets(_ config: KafkaConfiguration, topic: String, since: Int64) throws -> [TopicPartition: Int64] {
        let admin = try KafkaAdminClient(configuration: config)
        var result: [TopicPartition: Int64] = [:]
        for (partition, offset) in try admin.offsetsForTime(topic: topic, millisecondsSinceEpoch: since) {
            result[partition] = offset >= 0 ? offset : try admin.watermarks(topic: topic, partition: partition.partition).high
        }
        return result
    }

    static func pngFiles(_ inputs: [String]) throws -> [String] {
        var files: [String] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw ValidationError("no such file or directory: \(input)")
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: input).filter { $0.lowercased().hasSuffix(".png") }.sorted()
                files += names.map { URL(fileURLWithPath: input).appendingPathComponent($0).path }
            } else {
                files.append(input)
            }
        }
        return files
    }
}
