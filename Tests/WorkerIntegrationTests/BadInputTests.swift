import Foundation
import SegIO
import SegKafka
import SegTesting
import Testing

/// The bad-input corpus (Fixtures/bad-requests, written by Scripts/make_bad_requests.py; its
/// README lists the cases) through one running `serve` worker against a real Tansu broker: every
/// case gives its expected outcome, the worker keeps consuming, and the offsets move past them.
@Suite(.serialized, .enabled(if: TansuBroker.isConfigured, "UNIVERSEG_TANSU_BIN is not set (source Scripts/lib/kafka-runtime.sh)"))
struct BadInputTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/bad-requests")

    struct Manifest: Decodable {
        struct Header: Decodable {
            let name: String
            let value: String?
            let hex: String?
            let fill: String?
            let length: Int?

            var bytes: [UInt8] {
                if let value { return Array(value.utf8) }
                if let hex {
                    var out: [UInt8] = []
                    var i = hex.startIndex
                    while i < hex.endIndex {
                        let j = hex.index(i, offsetBy: 2)
                        out.append(UInt8(hex[i..<j], radix: 16)!)
                        i = j
                    }
                    return out
                }
                let unit = Array((fill ?? "").utf8)
                return (0..<(length ?? 0)).map { unit[$0 % unit.count] }
            }
        }

        struct Case: Decodable {
            let name: String
            let value: String?
            let key: String?
            let headers: [Header]
            let expect: String
            let errorResult: Bool
            let requestID: String?
            let mask: [Int]?
            let dice: Bool?
            let description: String

            enum CodingKeys: String, CodingKey {
                case name, value, key, headers, expect, description, mask, dice
                case errorResult = "error_result", requestID = "request_id"
            }
        }

        let canary: String
        let store: String
        let cases: [Case]
        let sentinel: Case
    }

    static func loadManifest() throws -> Manifest {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("manifest.json"))
        // The sentinel has the shape of an ok case without the optional fields.
        var json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var sentinel = try #require(json["sentinel"] as? [String: Any])
        sentinel["headers"] = [Any]()
        sentinel["expect"] = "ok"
        sentinel["error_result"] = false
        sentinel["description"] = "valid request sent last"
        json["sentinel"] = sentinel
        return try JSONDecoder().decode(Manifest.self, from: JSONSerialization.data(withJSONObject: json))
    }

    /// A case as sent: where it landed and what it carried.
    struct Sent: Sendable {
        let index: Int
        let partition: Int32
        let offset: Int64
        let key: [UInt8]?
        let value: [UInt8]?
        let headers: [(String, [UInt8])]
    }

    struct Source: Hashable { let partition: Int32; let offset: Int64 }

    @Test(.timeLimit(.minutes(6)))
    func everyCaseGivesItsOutcomeAndTheWorkerKeepsConsuming() async throws {
        let manifest = try Self.loadManifest()
        let cases = manifest.cases + [manifest.sentinel]
        #expect(manifest.cases.count >= 40)

        let broker = try await TansuBroker.start()
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let dir = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent(manifest.store).path, toPath: dir.path + "/store")
        try WorkerHarness.writeWeightsAndConfig(dir)
        try await WorkerHarness.createTopics(bootstrap)
        let group = "bad-input"
        let worker = try WorkerHarness.startWorker(dir, bootstrap: bootstrap, group: group)
        defer { if worker.process.isRunning { worker.process.terminate() } }

        // Send every case, then the sentinel, one at a time (in order).
        let producer = try await blocking { try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: [bootstrap])) }
        var sent: [Sent] = []
        for (index, c) in cases.enumerated() {
            let value = try c.value.map { [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent($0))) }
            let key = c.key.map { Array($0.utf8) }
            let headers = c.headers.map { ($0.name, $0.bytes) }
            let report = try await producer.send(topic: "universeg.requests", key: key, value: value, headers: headers)
            sent.append(Sent(index: index, partition: report.partition, offset: report.offset, key: key, value: value, headers: headers))
        }
        try await blocking { try producer.close() }
        let bySource = Dictionary(uniqueKeysWithValues: sent.map { (Source(partition: $0.partition, offset: $0.offset), $0) })

        // Read results and dead letters until every expected record is there (then a little longer,
        // to catch records that should not exist).
        let expectedResults = cases.filter { $0.expect == "ok" || $0.errorResult }.count
        let expectedDead = cases.filter { $0.expect != "ok" }.count
        let (results, dead) = try await WorkerHarness.readResultsAndDeadLetters(
            bootstrap: bootstrap, results: expectedResults, deadLetters: expectedDead, seconds: 180, linger: 3)
        #expect(worker.process.isRunning, "the worker must still run after the corpus:\n\(worker.log.suffix(3000))")

        // Index them by the request record they answer.
        var resultsBySource: [Source: [[String: Any]]] = [:]
        var resultHeaders: [Source: [(String, [UInt8])]] = [:]
        for m in results {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(m.value ?? [])) as? [String: Any])
            let source = try #require(json["source"] as? [String: Any])
            let key = Source(partition: Int32(try #require(source["partition"] as? Int)), offset: Int64(try #require(source["offset"] as? Int)))
            resultsBySource[key, default: []].append(json)
            resultHeaders[key] = m.headers
        }
        var deadBySource: [Source: [KafkaMessage]] = [:]
        for m in dead {
            let partition = m.header("universeg.source.partition").flatMap { Int32(String(decoding: $0, as: UTF8.self)) }
            let offset = m.header("universeg.source.offset").flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
            let key = Source(partition: try #require(partition), offset: try #require(offset))
            deadBySource[key, default: []].append(m)
        }
        #expect(Set(resultsBySource.keys).isSubset(of: bySource.keys) && Set(deadBySource.keys).isSubset(of: bySource.keys))

        // Every case.
        var reasons: [String] = []
        for s in sent {
            let c = cases[s.index]
            let source = Source(partition: s.partition, offset: s.offset)
            let res = resultsBySource[source] ?? []
            let dl = deadBySource[source] ?? []
            let what = "\(c.name) (\(c.description))"
            let headerBytes = s.headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.count }
            if c.expect == "ok" {
                #expect(dl.isEmpty, "\(what): unexpected dead letter \(dl.first.flatMap { $0.header("universeg.error.code") }.map { String(decoding: $0, as: UTF8.self) } ?? "")")
                guard res.count == 1, let r = res.first else {
                    Issue.record("\(what): \(res.count) results, expected one ok result")
                    continue
                }
                let error = (r["error"] as? [String: Any]).map { "\($0["code"] ?? "?"): \($0["reason"] ?? "?")" } ?? ""
                #expect(r["status"] as? String == "ok", "\(what): \(error)")
                #expect(r["request_id"] as? String == c.requestID, "\(what)")
                if let maskJSON = r["mask"] as? [String: Any], let b64 = maskJSON["png_base64"] as? String,
                   let bytes = Data(base64Encoded: b64), let expected = c.mask {
                    let mask = try PNGCodec.decode([UInt8](bytes))
                    #expect([mask.width, mask.height] == expected, "\(what): mask \(mask.width)x\(mask.height)")
                    #expect([maskJSON["width"] as? Int, maskJSON["height"] as? Int] == expected.map { Optional($0) }, "\(what)")
                    #expect(mask.values.allSatisfy { $0 == 0 || $0 == 255 }, "\(what): mask values")
                } else {
                    Issue.record("\(what): no decodable mask")
                }
                if c.dice == true { #expect(r["dice"] is Double, "\(what): dice") }
            } else {
                if dl.count != 1 {
                    let result = res.first.map { "; result: \($0["status"] ?? "?") \(String(describing: $0["error"]))" } ?? ""
                    Issue.record("\(what): \(dl.count) dead letters, expected one with \(c.expect)\(result)")
                }
                if let d = dl.first {
                    let code = d.header("universeg.error.code").map { String(decoding: $0, as: UTF8.self) }
                    let reason = d.header("universeg.error.reason").map { String(decoding: $0, as: UTF8.self) } ?? ""
                    #expect(code == c.expect, "\(what): dead letter code \(code ?? "none") (\(reason))")
                    #expect(!reason.isEmpty, "\(what): no reason")
                    reasons.append(reason)
                    #expect(d.value == s.value, "\(what): the dead letter must carry the original value")
                    #expect(d.key == s.key, "\(what): the dead letter must carry the original key")
                    // Every original header, unless the dead letter would then be too large (and
                    // then the omission is counted).
                    let copied = d.headers.filter { !$0.0.hasPrefix("universeg.") }
                    let all = copied.map(\.0) == s.headers.map(\.0) && copied.map(\.1) == s.headers.map(\.1)
                    if headerBytes <= 64 << 10 {
                        #expect(all, "\(what): the dead letter must carry the original headers")
                    } else if !all {
                        #expect(d.header("universeg.headers.dropped") != nil, "\(what): dropped headers not counted")
                    }
                    let size = (d.key?.count ?? 0) + (d.value?.count ?? 0) + d.headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.count }
                    #expect(size < 1_000_000, "\(what): dead letter of \(size) bytes")
                }
                if c.errorResult {
                    if res.count != 1 { Issue.record("\(what): \(res.count) results, expected one error result") }
                    if let r = res.first {
                        let error = r["error"] as? [String: Any]
                        #expect(r["status"] as? String == "error", "\(what)")
                        #expect(error?["code"] as? String == c.expect, "\(what): result code \(error?["code"] ?? "none") (\(error?["reason"] ?? ""))")
                        #expect(r["request_id"] as? String == c.requestID, "\(what)")
                        reasons.append(error?["reason"] as? String ?? "")
                    }
                } else {
                    #expect(res.isEmpty, "\(what): unexpected result \(res.first.map { String(describing: $0["request_id"]) } ?? "")")
                }
            }
            // Results carry the request's headers, bounded.
            if let copied = resultHeaders[source]?.filter({ !$0.0.hasPrefix("universeg.") }) {
                let bytes = copied.reduce(0) { $0 + $1.0.utf8.count + $1.1.count }
                #expect(bytes <= 64 << 10, "\(what): \(bytes) bytes of headers copied onto the result")
                if headerBytes <= 64 << 10 {
                    #expect(copied.map(\.0) == s.headers.map(\.0) && copied.map(\.1) == s.headers.map(\.1),
                            "\(what): the result must carry the request's headers")
                }
            }
        }

        // The group's committed offsets reach the end of every partition.
        var end: [Int32: Int64] = [0: 0, 1: 0]
        for s in sent { end[s.partition] = max(end[s.partition] ?? 0, s.offset + 1) }
        let committed = try await WorkerHarness.committedOffsets(bootstrap: bootstrap, group: group, reaching: end)
        #expect(end.allSatisfy { committed[$0.key] == $0.value }, "committed \(committed), end offsets \(end)")

        // SIGTERM: drained, exit 0.
        let status = try await OperationsIntegrationTests.terminate(worker)
        let log = worker.log
        #expect(status == 0, "exit status \(status):\n\(log.suffix(3000))")

        // Neither the log nor any reason holds image data or free text from the requests.
        var secrets = [manifest.canary]
        for s in sent {
            guard let value = s.value, let text = String(validating: value, as: UTF8.self) else { continue }
            var rest = Substring(text)
            for field in ["\"png_base64\":\"", "\"dicom_base64\":\""] {
                rest = Substring(text)
                while let range = rest.range(of: field) {
                    let b64 = rest[range.upperBound...].prefix { $0 != "\"" }
                    // DICOM objects start with a zero preamble: take their sample past it.
                    let sample = field.contains("dicom") && b64.count >= 240 ? b64.dropFirst(200).prefix(40) : b64.prefix(40)
                    if sample.count >= 40 { secrets.append(String(sample)) }
                    rest = rest[range.upperBound...]
                }
            }
        }
        for secret in Set(secrets) {
            #expect(!log.contains(secret), "the worker's log contains request data: \(secret.prefix(12))...")
            #expect(!reasons.contains { $0.contains(secret) }, "an error reason contains request data: \(secret.prefix(12))...")
        }
    }
}
