import Foundation
import SegDICOMweb
import SegIO
import SegTesting
import Testing

/// The DICOM command-line features against a real Orthanc (and, for `enqueue`, a real Tansu and
/// `serve`): `enqueue --dicomweb-server` and `support import`.
@Suite(.serialized,
       .enabled(if: OrthancServer.isAvailable, "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"),
       .enabled(if: DICOMTools.hasPython, "python3 with pydicom and highdicom is needed (Scripts/lib/ensure-deps.sh)"))
struct DICOMCommandTests {
    static func worker(_ arguments: [String]) throws -> ProcessResult {
        try DICOMServeTests.run(WorkerHarness.executable, arguments)
    }

    /// `enqueue --dicomweb-server pacs --study --series --wait` against `serve`: one request, the
    /// SEG's UIDs printed and the SEG retrievable from the PACS; an unknown series prints the error
    /// code and exits 1.
    @Test(.timeLimit(.minutes(4)),
          .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"))
    func enqueueSeriesPrintsTheStoredSEG() async throws {
        let world = try await DICOMWorld.start()
        defer { world.stop() }
        let (pacs, dir, series, bootstrap) = (world.pacs, world.dir, world.series, world.bootstrap)
        let worker = try world.startWorker(group: "dicom-enqueue")
        let process = worker.process
        defer { if process.isRunning { process.terminate() } }

        let common = ["enqueue", "--brokers", bootstrap, "--support-set", "disks", "--dicomweb-server", "pacs",
                      "--study", series.study, "--wait", "--timeout", "120", "--out", dir.path + "/out"]
        let r = try Self.worker(common + ["--series", series.series])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)\n\(worker.log.suffix(3000))")
        let line = try #require(r.stdout.split(separator: "\n").map(String.init).first { $0.contains("\tok\t") }, "\(r.stdout)")
        var fields: [String: String] = [:]
        for field in line.split(separator: "\t") {
            let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { fields[kv[0]] = kv[1] }
        }
        #expect(fields["study"] == series.study && fields["frames"] == "4" && fields["server"] == "pacs", "\(line)")
        #expect(fields["retrieve_url"]?.hasPrefix("http") == true, "\(line)")
        let client = DICOMwebClient(server: DICOMwebServer(name: "pacs", baseURL: pacs.dicomWebURL, timeoutSeconds: 10))
        let segSeries = try #require(fields["series"]), segSOP = try #require(fields["sop_instance"])
        let stored = try client.retrieveInstance(study: series.study, series: segSeries, instance: segSOP, maxBytes: 16 << 20)
        #expect(stored.count > 4096)

        let missing = try Self.worker(common + ["--series", "1.2.3.4"])
        #expect(missing.status == 1, "\(missing.stdout)\n\(missing.stderr)")
        #expect(missing.stdout.contains("\terror\tdicom_not_found\t"), "\(missing.stdout)")

        let bad = try Self.worker(["enqueue", "--brokers", bootstrap, "--support-set", "disks", "--dicomweb-server", "http://x",
                                   "--study", series.study, "--series", series.series])
        #expect(bad.status != 0 && bad.stderr.contains("--dicomweb-server"), "\(bad.stderr)")
        #expect(!(r.stdout + missing.stdout + worker.log).contains("Phantom"), "no patient data in the output")
        process.terminate()
        process.waitUntilExit()
    }

    /// `support import` from the fixture series and a highdicom SEG (segment 1 "disk" = the bright
    /// disk of each slice): the set loads, holds the four slices in position order with the SEG's
    /// masks as labels, the SEG's label and the given window; LATEST moves from 1 to 2. Importing
    /// the same version again, an http store and a segment without frames are clear errors.
    @Test(.timeLimit(.minutes(2)))
    func supportImportWritesTheSEGAsAVersionedSet() async throws {
        let pacs = try await OrthancServer.start()
        defer { pacs.stop() }
        let dir = try TemporaryDirectory()
        try DICOMServeTests.writeSupportSet(dir)  // store/disks/1 and LATEST = 1
        let series = try DiskFixture.makeSeries(in: dir)
        let made = try DICOMServeTests.run("/usr/bin/env", ["python3", DICOMServeTests.repository.path + "/Tests/WorkerIntegrationTests/Fixtures/dicom/make_seg.py",
                                                             dir.path + "/seg.dcm"] + series.paths)
        #expect(made.status == 0, "\(made.stderr)")
        let seg = try #require(try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String])
        for path in series.paths + [dir.path + "/seg.dcm"] { try pacs.upload([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))) }

        let common = ["support", "import", "--server", "pacs=\(pacs.dicomWebURL.absoluteString)", "--study", series.study,
                      "--image-series", series.series, "--seg-series", try #require(seg["series"]), "--id", "disks"]
        let r = try Self.worker(common + ["--version", "2", "--store", dir.path + "/store", "--window-center", "100", "--window-width", "400"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let set = try SupportSetDirectory.load(directory: dir.path + "/store/disks/2", size: 64)
        #expect(set.manifest.label == "disk" && set.manifest.name == "disks" && set.manifest.version == "2")
        #expect(set.manifest.window == .init(center: 100, width: 400))
        #expect(set.manifest.entries.count == 4)
        #expect(String(decoding: try FileIO.read(dir.path + "/store/disks/LATEST", maxBytes: 64), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "2")
        // Position order runs k = 3, 2, 1, 0 (make_series.py); labels are the SEG's disks.
        for (entry, k) in zip(set.manifest.entries, [3, 2, 1, 0]) {
            let label = try PNGCodec.decode(try FileIO.read(dir.path + "/store/disks/2/" + entry.label, maxBytes: 1 << 20))
            let image = try PNGCodec.decode(try FileIO.read(dir.path + "/store/disks/2/" + entry.image, maxBytes: 1 << 20))
            let disk = DiskFixture.slice(k).map { $0 == 200 }
            #expect(label.width == 64 && label.height == 64)
            #expect(label.values == disk.map { $0 ? 255 : 0 }, "entry \(entry.label): the label must be the SEG's mask of slice \(k)")
            // The window (100, 400) maps 200 to 192 and 40 to 89 of 255.
            #expect(image.values == disk.map { $0 ? 192 : 89 }, "entry \(entry.image): \(Set(image.values))")
        }

        let again = try Self.worker(common + ["--version", "2", "--store", "file://" + dir.path + "/store"])
        #expect(again.status != 0 && again.stderr.contains("never overwritten"), "\(again.stderr)")
        let http = try Self.worker(common + ["--version", "3", "--store", "http://127.0.0.1:9/store"])
        #expect(http.status != 0 && http.stderr.contains("read-only"), "\(http.stderr)")
        let none = try Self.worker(common + ["--version", "3", "--store", dir.path + "/store", "--segment", "7"])
        #expect(none.status != 0 && none.stderr.contains("no frame of segment 7"), "\(none.stderr)")
        let badUID = try Self.worker(["support", "import", "--server", "pacs=\(pacs.dicomWebURL.absoluteString)", "--study", "1.2.x",
                                      "--image-series", series.series, "--seg-series", series.series, "--id", "d", "--version", "1",
                                      "--store", dir.path + "/store"])
        #expect(badUID.status != 0 && badUID.stderr.contains("--study"), "\(badUID.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/store/disks/3"))
        #expect(String(decoding: try FileIO.read(dir.path + "/store/disks/LATEST", maxBytes: 64), as: UTF8.self).hasPrefix("2"))
        #expect(!(r.stdout + r.stderr).contains("Phantom"), "no patient data in the output")
    }
}
