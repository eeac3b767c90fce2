import Foundation
import SegKafka
import SegTesting
import Testing

/// The PACS cases of the bad-input corpus (Fixtures/bad-requests, manifest `pacs`; the README lists
/// them): one `serve` worker, a real Tansu broker, a real Orthanc 1.10 with its DICOMweb plugin
/// holding the corpus's `pacs/*.dcm` (DICOMweb server "pacs"), and, only for the STOW rejection, a
/// scripted server "rejecting" whose STOW-RS answers 409 with a FailedSOPSequence. Every error
/// case gives one dead letter and one error result with its code; the ok case stores its SEG on
/// the PACS; the worker keeps running and the offsets move past every case.
@Suite(.serialized,
       .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"),
       .enabled(if: OrthancServer.isAvailable, "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"))
struct DICOMBadInputTests {
    struct Manifest: Decodable {
        struct Case: Decodable {
            let name: String
            let value: String
            let key: String
            let expect: String
            let errorResult: Bool
            let requestID: String
            let slices: Int?
            let description: String

            enum CodingKeys: String, CodingKey {
                case name, value, key, expect, slices, description
                case errorResult = "error_result", requestID = "request_id"
            }
        }

        struct PACS: Decodable {
            let files: [String]
            let cases: [Case]
        }

        let canary: String
        let store: String
        let pacs: PACS
    }

    /// A STOW-RS refusal as Orthanc 1.10 words it when the instance's study differs from the URL's.
    static let rejection = #"{"00081190":{"vr":"UR","Value":["http://127.0.0.1/dicom-web/studies/1.2.3"]},"00081198":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.66.4"]},"00081155":{"vr":"UI","Value":["1.2.3.4"]},"00081197":{"vr":"US","Value":[272]}}]}}"#

    @Test(.timeLimit(.minutes(4)))
    func pacsCasesGiveTheirCodesAndTheWorkerKeepsConsuming() async throws {
        let fixtures = BadInputTests.fixtures
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: fixtures.appendingPathComponent("manifest.json")))
        let cases = manifest.pacs.cases
        #expect(cases.count >= 8)

        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let pacs = try await OrthancServer.start()
        defer { pacs.stop() }
        let rejecting = try ScriptedHTTPServer { _ in
            .respond(ScriptedHTTPServer.response(status: 409, reason: "Conflict", headers: ["Content-Type": "application/dicom+json"],
                                                 body: Array(Self.rejection.utf8)))
        }
        defer { rejecting.stop() }
        for file in manifest.pacs.files {
            try pacs.upload([UInt8](try Data(contentsOf: fixtures.appendingPathComponent(file))))
        }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent(manifest.store).path, toPath: dir.path + "/store")
        try WorkerHarness.writeWeightsAndConfig(dir)
        try await WorkerHarness.createTopics(bootstrap)
        let group = "dicom-bad-input"
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: group, arguments: [
            "--dicomweb-server", "pacs=\(pacs.dicomWebURL.absoluteString)",
            "--dicomweb-server", "rejecting=http://127.0.0.1:\(rejecting.port)/dicom-web",
        ])
        defer { if worker.process.isRunning { worker.process.terminate() } }

        // Send every case in order, remembering where each landed.
        let producer = try await blocking { try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: [bootstrap])) }
        var sent: [(c: Manifest.Case, partition: Int32, offset: Int64, value: [UInt8])] = []
        for c in cases {
            let value = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(c.value)))
            let report = try await producer.send(topic: "universeg.requests", key: Array(c.key.utf8), value: value, headers: [])
            sent.append((c, report.partition, report.offset, value))
        }
        try await blocking { try producer.close() }

        let expectedDead = cases.filter { $0.expect != "ok" }.count
        let (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(
            bootstrap: bootstrap, results: cases.count, deadLetters: expectedDead, seconds: 120, linger: 3)
        #expect(worker.process.isRunning, "the worker must still run:\n\(worker.log.suffix(3000))")
        var resultsByID: [String: [[String: Any]]] = [:]
        for m in results {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any])
            resultsByID[json["request_id"] as? String ?? "?", default: []].append(json)
        }
        var deadByKey: [String: [KafkaMessage]] = [:]
        for m in dead { deadByKey[String(decoding: m.key ?? [], as: UTF8.self), default: []].append(m) }

        var reasons: [String] = []
        for s in sent {
            let c = s.c
            let what = "\(c.name) (\(c.description))"
            let res = resultsByID[c.requestID] ?? []
            let dl = deadByKey[c.key] ?? []
            guard res.count == 1, let r = res.first else {
                Issue.record("\(what): \(res.count) results, expected one\n\(worker.log.suffix(2000))")
                continue
            }
            let error = r["error"] as? [String: Any]
            if c.expect == "ok" {
                #expect(dl.isEmpty, "\(what): unexpected dead letter")
                #expect(r["status"] as? String == "ok", "\(what): \(String(describing: error))")
                let seg = r["dicom_seg"] as? [String: Any]
                #expect(seg?["server"] as? String == "pacs" && seg?["frames"] as? Int == c.slices, "\(what): \(String(describing: seg))")
                #expect((r["slices"] as? [Any])?.count == c.slices, "\(what)")
            } else {
                #expect(r["status"] as? String == "error", "\(what)")
                #expect(error?["code"] as? String == c.expect, "\(what): result code \(error?["code"] ?? "none") (\(error?["reason"] ?? ""))")
                reasons.append(error?["reason"] as? String ?? "")
                if dl.count != 1 { Issue.record("\(what): \(dl.count) dead letters, expected one with \(c.expect)") }
                if let d = dl.first {
                    let code = d.header("universeg.error.code").map { String(decoding: $0, as: UTF8.self) }
                    let reason = d.header("universeg.error.reason").map { String(decoding: $0, as: UTF8.self) } ?? ""
                    #expect(code == c.expect, "\(what): dead letter code \(code ?? "none") (\(reason))")
                    #expect(d.value == s.value, "\(what): the dead letter must carry the original value")
                    reasons.append(reason)
                }
            }
        }
        // The rejection really went through the scripted server's STOW-RS (one POST), and nothing else did.
        let posts = rejecting.requests.map(\.head)
        #expect(posts.count == 1 && posts.allSatisfy { $0.hasPrefix("POST /dicom-web/studies/") }, "\(posts)")

        // The group's committed offsets reach the end of every partition.
        var end: [Int32: Int64] = [0: 0, 1: 0]
        for s in sent { end[s.partition] = max(end[s.partition] ?? 0, s.offset + 1) }
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: group, reaching: end)
        #expect(end.allSatisfy { committed[$0.key] == $0.value }, "committed \(committed), end offsets \(end)")

        let status = try await OperationsIntegrationTests.terminate(worker)
        #expect(status == 0, "exit status \(status):\n\(worker.log.suffix(3000))")
        #expect(!worker.log.contains(manifest.canary), "the worker's log holds patient data")
        #expect(!reasons.contains { $0.contains(manifest.canary) }, "an error reason holds patient data")
    }
}
