import Foundation
import SegDICOMweb
import SegTesting
import Testing

/// The client against scripted loopback servers: request shape (auth, Accept, URL), answer
/// parsing and status mapping without a PACS.
@Suite struct DICOMwebClientScriptedTests {
    private func client(_ server: ScriptedHTTPServer, auth: DICOMwebServer.Auth = .none, timeout: Double = 5) -> DICOMwebClient {
        DICOMwebClient(server: DICOMwebServer(
            name: "scripted", baseURL: URL(string: "http://127.0.0.1:\(server.port)/dicom-web/")!, auth: auth, timeoutSeconds: timeout))
    }


    private static func json(_ status: Int, _ text: String) -> ScriptedHTTPServer.Behavior {
        .respond(ScriptedHTTPServer.response(
            status: status, reason: "X", headers: ["Content-Type": "application/dicom+json"], body: Array(text.utf8)))
    }

    @Test func invalidUIDsAreRefusedWithoutARequest() async throws {
        let server = try ScriptedHTTPServer { _ in Self.json(200, "[]") }
        defer { server.stop() }
        let dicomweb = client(server)
        for bad in ["", "1.2/../../x", "1.02", "1.2?limit=1", "1..2", String(repeating: "9", count: 65)] {
            let errors = try await onThread {
                [
                    fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: bad, series: "1.2", limit: 10) },
                    fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: "1.2", series: bad, limit: 10) },
                    fails { () throws(DICOMwebError) in try dicomweb.retrieveInstance(study: "1.2", series: "1.3", instance: bad, maxBytes: 10) },
                    fails { () throws(DICOMwebError) in try dicomweb.store(study: bad, instance: [1, 2, 3]) },
                ]
            }
            #expect(errors.map { $0?.kind } == [.badRequest, .badRequest, .badRequest, .badRequest], "\(bad)")
            #expect(errors.allSatisfy { $0?.isTransient == false })
        }
        #expect(server.requests.isEmpty)
    }

    @Test func requestShapeAndAuthorization() async throws {
        let server = try ScriptedHTTPServer { _ in Self.json(200, #"[{"00080018":{"vr":"UI","Value":["1.2.3.4"]}}]"#) }
        defer { server.stop() }
        let bearer = client(server, auth: .bearer("tok.en"))
        #expect(try await onThread { try bearer.instanceUIDs(study: "1.2", series: "1.2.3", limit: 10) } == ["1.2.3.4"])
        let basic = client(server, auth: .basic(user: "aladdin", password: "open sesame"))
        _ = try await onThread { try basic.instanceUIDs(study: "1.2", series: "1.2.3", limit: 10) }
        let heads = server.requests.map(\.head)
        #expect(heads.count == 2)
        #expect(heads.first?.hasPrefix("GET /dicom-web/studies/1.2/series/1.2.3/instances?limit=11 HTTP/1.1") == true)
        #expect(heads.first?.contains("Accept: application/dicom+json") == true)
        #expect(heads.first?.contains("Authorization: Bearer tok.en") == true)
        #expect(heads.last?.contains("Authorization: Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==") == true)
    }

    @Test func statusMapping() async throws {
        for (status, kind) in [(401, DICOMwebError.Kind.unavailable), (403, .unavailable), (429, .unavailable), (503, .unavailable),
                               (404, .notFound), (400, .badRequest), (406, .badRequest), (204, .notFound)] {
            let server = try ScriptedHTTPServer { _ in .respond(ScriptedHTTPServer.response(status: status, reason: "X")) }
            defer { server.stop() }
            let dicomweb = client(server)
            let error = try await onThread { fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: "1.2", series: "1.3", limit: 5) } }
            #expect(error?.kind == kind, "HTTP \(status)")
            #expect(error?.isTransient == (kind == .unavailable))
            #expect(error?.message.hasPrefix("scripted: QIDO-RS") == true)
        }
    }

    @Test func malformedAnswersAreInvalidResponses() async throws {
        let answers: [ScriptedHTTPServer.Behavior] = [
            Self.json(200, "{not json"),
            Self.json(200, #"[{"00080018":{"vr":"UI","Value":["1.2/../x"]}}]"#),
            Self.json(200, #"[{"00100010":{"vr":"PN"}}]"#),
        ]
        for answer in answers {
            let server = try ScriptedHTTPServer { _ in answer }
            defer { server.stop() }
            let dicomweb = client(server)
            let error = try await onThread { fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: "1.2", series: "1.3", limit: 5) } }
            #expect(error?.kind == .invalidResponse)
        }
        // WADO-RS: two parts where one is expected; a part that is not Part 10.
        let twoParts = Multipart.build(parts: [[UInt8](repeating: 0, count: 200), [1]], contentType: "application/dicom", boundary: "b")
        let notPart10 = Multipart.build(parts: [[UInt8](repeating: 0, count: 200)], contentType: "application/dicom", boundary: "b")
        for body in [twoParts, notPart10] {
            let server = try ScriptedHTTPServer { _ in
                .respond(ScriptedHTTPServer.response(
                    status: 200, reason: "OK", headers: ["Content-Type": #"multipart/related; type="application/dicom"; boundary=b"#],
                    body: body))
            }
            defer { server.stop() }
            let dicomweb = client(server)
            let error = try await onThread {
                fails { () throws(DICOMwebError) in try dicomweb.retrieveInstance(study: "1.2", series: "1.3", instance: "1.4", maxBytes: 1000) }
            }
            #expect(error?.kind == .invalidResponse)
            #expect(server.requests.first?.head.contains(#"Accept: multipart/related; type="application/dicom"; transfer-syntax=*"#) == true)
        }
    }

    @Test func storeAnswers() async throws {
        let failed200 = #"{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[49152]}}]},"00081199":{"vr":"SQ"}}"#
        let referencedOnly = #"{"00081190":{"vr":"UR","Value":["http://x/studies/1.2"]},"#
            + #""00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.9"]}}]}}"#
        let duplicate = #"{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.9"]},"00081197":{"vr":"US","Value":[273]}}]}}"#
        let duplicateAndOther = #"{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[273]}},{"00081197":{"vr":"US","Value":[272]}}]}}"#
        enum Expected { case ok(StoreReceipt), failure(DICOMwebError.Kind) }
        let cases: [(ScriptedHTTPServer.Behavior, Expected)] = [
            (Self.json(200, failed200), .failure(.rejected)),
            (Self.json(202, failed200), .failure(.rejected)),
            (.respond(ScriptedHTTPServer.response(status: 409, reason: "Conflict")), .failure(.rejected)),
            (.respond(ScriptedHTTPServer.response(status: 413, reason: "Too Large")), .failure(.badRequest)),
            (.respond(ScriptedHTTPServer.response(status: 500, reason: "Oops")), .failure(.unavailable)),
            (Self.json(200, #"{"00081199":{"vr":"SQ"}}"#), .failure(.invalidResponse)),
            (Self.json(200, referencedOnly), .ok(StoreReceipt(sopInstanceUID: "1.2.9", retrieveURL: "http://x/studies/1.2"))),
            // Duplicate SOP Instance (0x0111 = 273) for the only item, with 409 or 202: already stored.
            (Self.json(409, duplicate), .ok(StoreReceipt(sopInstanceUID: "1.2.9", retrieveURL: nil))),
            (Self.json(202, duplicate), .ok(StoreReceipt(sopInstanceUID: "1.2.9", retrieveURL: nil))),
            // A duplicate beside another failure is still a rejection.
            (Self.json(409, duplicateAndOther), .failure(.rejected)),
        ]
        for (answer, expected) in cases {
            let server = try ScriptedHTTPServer { _ in answer }
            defer { server.stop() }
            let dicomweb = client(server)
            let result = try await onThread { () -> Result<StoreReceipt, DICOMwebError> in
                do throws(DICOMwebError) { return .success(try dicomweb.store(study: "1.2", instance: Array("DICM-ish".utf8))) } catch {
                    return .failure(error)
                }
            }
            switch (result, expected) {
            case (.success(let receipt), .ok(let want)): #expect(receipt == want)
            case (.failure(let error), .failure(let kind)): #expect(error.kind == kind, "\(error)")
            default: Issue.record("got \(result), expected \(expected)")
            }
            if case .failure(let error) = result { #expect(error.message.hasPrefix("scripted: STOW-RS store")) }
            let head = try #require(server.requests.first).head
            #expect(head.hasPrefix("POST /dicom-web/studies/1.2 HTTP/1.1"))
            #expect(head.contains(#"Content-Type: multipart/related; type="application/dicom"; boundary=SegDICOMweb-"#))
        }
    }

    @Test func refusedConnectionIsUnavailable() async throws {
        let port = try LoopbackHTTP.freePort()
        let dicomweb = DICOMwebClient(server: DICOMwebServer(name: "down", baseURL: URL(string: "http://127.0.0.1:\(port)/dicom-web")!))
        let error = try await onThread { fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: "1.2", series: "1.3", limit: 5) } }
        #expect(error?.kind == .unavailable)
        #expect(error?.isTransient == true)
    }
}
