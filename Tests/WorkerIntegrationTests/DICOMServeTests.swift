import Foundation
import SegDICOMweb
import SegIO
import SegKafka
import SegTesting
import Synchronization
import Testing

/// What every DICOM integration test starts from: a Tansu broker with the four topics, an Orthanc
/// PACS holding the fixture series (Fixtures/dicom/make_series.py), and a test directory with the
/// "disks" support set and small random weights. `stop()` stops broker and PACS.
struct DICOMWorld {
    let broker: TansuBroker
    let pacs: OrthancServer
    let dir: TemporaryDirectory
    let series: DiskFixture.Series
    var bootstrap: String { broker.bootstrapServers }

    static func start() async throws -> DICOMWorld {
        let broker = try await TansuBroker.start()
        do {
            let pacs = try await OrthancServer.start()
            do {
                let dir = try TemporaryDirectory()
                try DICOMServeTests.writeSupportSet(dir)
                try WorkerHarness.writeWeightsAndConfig(dir)
                let series = try DiskFixture.makeSeries(in: dir)
                for path in series.paths { try pacs.upload([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))) }
                try await WorkerHarness.createTopics(broker.bootstrapServers)
                return DICOMWorld(broker: broker, pacs: pacs, dir: dir, series: series)
            } catch {
                pacs.stop()
                throw error
            }
        } catch {
            broker.stop()
            throw error
        }
    }

    /// `serve` in consumer group `group`, knowing the PACS as "pacs".
    func startWorker(group: String) throws -> WorkerHarness.Worker {
        try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: group,
                                      arguments: ["--dicomweb-server", "pacs=\(pacs.dicomWebURL.absoluteString)"])
    }

    func stop() {
        pacs.stop()
        broker.stop()
    }
}

enum DICOMTools {
    static let hasPython: Bool = {
        let result = try? DICOMServeTests.run("/usr/bin/env", ["python3", "-c", "import pydicom, highdicom, numpy"])
        return result?.status == 0
    }()
}

/// `serve` against a real PACS: Orthanc 1.10 with its DICOMweb plugin, and a real Tansu broker.
/// The series comes from Fixtures/dicom/make_series.py (pydicom); every SEG the worker stores is
/// fetched back over WADO-RS and checked with dciodvfy and with highdicom (Scripts/check_seg.py).
@Suite(.serialized,
       .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"),
       .enabled(if: OrthancServer.isAvailable, "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"),
       .enabled(if: DICOMTools.hasPython, "python3 with pydicom and highdicom is needed (Scripts/lib/ensure-deps.sh)"),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dciodvfy"), "dciodvfy is not installed (apt-get install dicom3tools)"))
struct DICOMServeTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        try runToCompletion(executable, arguments)
    }

    /// The "disks" support set in the store: `store/disks/1`, LATEST = 1.
    static func writeSupportSet(_ dir: TemporaryDirectory) throws {
        try DiskFixture.writeSupportSet(dir, at: "store/disks/1")
        try dir.write("store/disks/LATEST", Array("1".utf8))
    }

    static func results(_ messages: [KafkaMessage]) throws -> [String: [String: Any]] {
        var byID: [String: [String: Any]] = [:]
        for m in messages {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any])
            byID[try #require(json["request_id"] as? String)] = json
        }
        return byID
    }

    /// Writes `seg` and checks it: dciodvfy passes it and highdicom maps it onto the sources;
    /// returns highdicom's mask per source SOP instance UID ("0101...", row-major).
    static func checkSEG(_ seg: [UInt8], sources: [String], in dir: TemporaryDirectory, name: String) throws -> [String: String] {
        try dir.write(name, seg)
        let path = dir.path + "/" + name
        let verify = try Dciodvfy.check(path)
        #expect(verify.passed, "dciodvfy: \(verify.output.suffix(3000))")
        let check = try run("/usr/bin/env", ["python3", repository.path + "/Scripts/check_seg.py", path] + sources)
        #expect(check.status == 0, "check_seg.py: \(check.stdout) \(check.stderr.suffix(2000))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
        #expect(json["segmentationType"] as? String == "BINARY")
        return try #require(json["masks"] as? [String: String])
    }

    /// A whole series, one instance, the same pixels as PNG, and an inline object:
    /// - the series gives one SEG of 4 frames stored in the PACS, slices in position order;
    /// - the single instance's mask equals the PNG request's mask and the SEG's frame (highdicom);
    /// - every stored SEG passes dciodvfy and maps back to its sources;
    /// - an inline object with output.stow false carries its SEG base64;
    /// - unknown series and unconfigured server are permanent errors (dead letters).
    @Test(.timeLimit(.minutes(4)))
    func seriesAreSegmentedIntoValidSEGsStoredInThePACS() async throws {
        let world = try await DICOMWorld.start()
        defer { world.stop() }
        let (pacs, dir, series, bootstrap) = (world.pacs, world.dir, world.series, world.bootstrap)

        let web = #"{"server":"pacs","study_uid":"\#(series.study)","series_uid":"\#(series.series)""#
        let png1 = Data(try PNGCodec.encodeGray8(DiskFixture.slice(1), width: 64, height: 64)).base64EncodedString()
        let dicom2 = try Data(contentsOf: URL(fileURLWithPath: series.paths[2])).base64EncodedString()
        let requests: [WorkerHarness.Request] = [
            .init(key: "series", value: #"{"request_id":"series","support_set":{"id":"disks"},"image":{"dicomweb":\#(web)}}}"#),
            .init(key: "one", value: #"{"request_id":"one","support_set":{"id":"disks"},"image":{"dicomweb":\#(web),"instance_uids":["\#(series.instances[1])"]}}}"#),
            .init(key: "png", value: #"{"request_id":"png","support_set":{"id":"disks"},"image":{"png_base64":"\#(png1)"}}"#),
            .init(key: "inline", value: #"{"request_id":"inline","support_set":{"id":"disks"},"image":{"dicom_base64":"\#(dicom2)"},"output":{"stow":false}}"#),
            .init(key: "unknown", value: #"{"request_id":"unknown","support_set":{"id":"disks"},"image":{"dicomweb":{"server":"pacs","study_uid":"\#(series.study)","series_uid":"1.2.3.4"}}}"#),
            .init(key: "noserver", value: #"{"request_id":"noserver","support_set":{"id":"disks"},"image":{"dicomweb":{"server":"elsewhere","study_uid":"1.2.3","series_uid":"1.2.3.4"}}}"#),
        ]
        try await WorkerHarness.send(requests, bootstrap: bootstrap)
        let worker = try world.startWorker(group: "dicom")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }
        let (messages, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 6, deadLetters: 2)
        let byID = try Self.results(messages)
        #expect(byID.count == 6, "\(byID.keys.sorted())\n\(worker.log.suffix(3000))")
        #expect(Set(dead.compactMap { $0.header("universeg.error.code").map { String(decoding: $0, as: UTF8.self) } })
                == ["dicom_not_found", "invalid_request"])
        #expect((byID["unknown"]?["error"] as? [String: Any])?["code"] as? String == "dicom_not_found")
        #expect((byID["noserver"]?["error"] as? [String: Any])?["code"] as? String == "invalid_request")

        let client = DICOMwebClient(server: DICOMwebServer(name: "pacs", baseURL: pacs.dicomWebURL, timeoutSeconds: 10))

        // The series: 4 frames, stored, slices in position order (k = 3, 2, 1, 0).
        let whole = try #require(byID["series"], "\(worker.log.suffix(3000))")
        #expect(whole["status"] as? String == "ok", "\(whole)")
        let seg = try #require(whole["dicom_seg"] as? [String: Any])
        #expect(seg["server"] as? String == "pacs" && seg["frames"] as? Int == 4 && seg["study_uid"] as? String == series.study)
        #expect(seg["retrieve_url"] is String)
        #expect(whole["mask"] == nil, "a series carries per-slice fractions, not PNGs")
        let slices = try #require(whole["slices"] as? [[String: Any]])
        #expect(slices.compactMap { $0["sop_instance_uid"] as? String } == [3, 2, 1, 0].map { series.instances[$0] })
        let segSeries = try #require(seg["series_uid"] as? String), segSOP = try #require(seg["sop_instance_uid"] as? String)
        let stored = try client.retrieveInstance(study: series.study, series: segSeries, instance: segSOP, maxBytes: 16 << 20)
        let masks = try Self.checkSEG(stored, sources: series.paths, in: dir, name: "series.seg.dcm")
        for slice in slices {
            let uid = try #require(slice["sop_instance_uid"] as? String)
            let fraction = try #require(slice["foreground_fraction"] as? Double)
            let mask = try #require(masks[uid])
            let ones = mask.filter { $0 == "1" }.count
            #expect(Double(ones) / 4096 == fraction, "slice \(uid): highdicom \(ones) pixels, result \(fraction)")
        }

        // One instance: the mask equals the PNG path's and the SEG's frame.
        let one = try #require(byID["one"])
        let png = try #require(byID["png"])
        let oneMask = try #require((one["mask"] as? [String: Any])?["png_base64"] as? String)
        #expect(oneMask == (png["mask"] as? [String: Any])?["png_base64"] as? String, "DICOM and PNG paths must agree on the same pixels")
        let oneSEG = try #require(one["dicom_seg"] as? [String: Any])
        let oneSeries = try #require(oneSEG["series_uid"] as? String), oneSOP = try #require(oneSEG["sop_instance_uid"] as? String)
        let oneBytes = try client.retrieveInstance(study: series.study, series: oneSeries, instance: oneSOP, maxBytes: 16 << 20)
        let oneMasks = try Self.checkSEG(oneBytes, sources: [series.paths[1]], in: dir, name: "one.seg.dcm")
        let oneMaskBytes = try #require(Data(base64Encoded: oneMask))
        let decoded = try PNGCodec.decode([UInt8](oneMaskBytes), limits: ImageLimits())
        #expect(oneMasks[series.instances[1]] == String(decoded.values.map { $0 != 0 ? "1" : "0" }), "the SEG frame equals the PNG mask")

        // Inline object, not stored: the SEG travels in the result.
        let inline = try #require(byID["inline"])
        let inlineSEG = try #require(inline["dicom_seg"] as? [String: Any])
        #expect(inlineSEG["server"] == nil)
        let inlineBase64 = try #require(inlineSEG["base64"] as? String)
        let inlineBytes = [UInt8](try #require(Data(base64Encoded: inlineBase64)))
        _ = try Self.checkSEG(inlineBytes, sources: [series.paths[2]], in: dir, name: "inline.seg.dcm")

        #expect(!worker.log.contains("Phantom") && !worker.log.contains("PHANTOM-1"), "no patient data in the log")
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(worker.log.suffix(2000))")
    }

    /// The PACS goes down (SIGKILL) with requests waiting: nothing is answered, dead-lettered or
    /// committed while it is down; once it is back every request is answered `ok` and its SEG stored.
    @Test(.timeLimit(.minutes(4)))
    func aPACSOutageDelaysRequestsAndLosesNone() async throws {
        let world = try await DICOMWorld.start()
        defer { world.stop() }
        let (pacs, series, bootstrap) = (world.pacs, world.series, world.bootstrap)
        let worker = try world.startWorker(group: "pacs-outage")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }

        pacs.kill()
        let ids = (0..<4).map { "down-\($0)" }
        try await WorkerHarness.send(ids.enumerated().map { k, id in
            .init(key: id, value: #"{"request_id":"\#(id)","support_set":{"id":"disks"},"image":{"dicomweb":{"server":"pacs","study_uid":"\#(series.study)","series_uid":"\#(series.series)","instance_uids":["\#(series.instances[k])"]}}}"#)
        }, bootstrap: bootstrap)
        var (messages, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 1, deadLetters: 1, seconds: 12)
        #expect(messages.isEmpty && dead.isEmpty, "nothing while the PACS is down: \(messages.count) results, \(dead.count) dead letters\n\(worker.log.suffix(3000))")
        #expect(worker.log.contains("dependency down") && worker.log.contains("dicomweb:pacs"), "\(worker.log.suffix(3000))")
        #expect(process.isRunning)

        try pacs.restart()
        (messages, dead) = try await WorkerHarness.readResultsAndDeadLetters(bootstrap: bootstrap, results: 4, deadLetters: 0, seconds: 90, linger: 2)
        let byID = try Self.results(messages)
        #expect(dead.isEmpty)
        #expect(Set(byID.keys) == Set(ids), "\(byID.keys.sorted())\n\(worker.log.suffix(3000))")
        #expect(byID.values.allSatisfy { $0["status"] as? String == "ok" && ($0["dicom_seg"] as? [String: Any])?["server"] as? String == "pacs" })
        #expect(worker.log.contains("dependency back"))
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: "pacs-outage", partitions: 2)
            .values.filter { $0 > 0 }.reduce(0, +)
        #expect(committed == ids.count)
    }
}
