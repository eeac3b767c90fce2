import Foundation
import SegHTTP
import SegTesting
import Testing

/// SegHTTP against scripted loopback servers (`ScriptedHTTPServer`): statuses, the size bound
/// (declared and streamed), refused connections and a server that never answers.
@Suite struct HTTPClientTests {
    private func url(_ server: ScriptedHTTPServer, _ path: String = "/x") -> URL {
        URL(string: "http://127.0.0.1:\(server.port)\(path)")!
    }


    @Test func returnsStatusHeadersAndBodyAndSendsHeadersAndBody() async throws {
        let server = try ScriptedHTTPServer { _ in
            .respond(ScriptedHTTPServer.response(
                status: 200, reason: "OK", headers: ["Content-Type": "application/json", "X-Thing": "a"], body: Array("[1]".utf8)))
        }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let response = try await onThread {
            try client.send(
                method: "POST", url: url(server, "/p?q=1"), headers: ["Authorization": "Bearer t0k", "Content-Type": "text/plain"],
                body: Array("hello".utf8), maxBytes: 1000)
        }
        #expect(response.status == 200)
        #expect(response.body == Array("[1]".utf8))
        #expect(response.headers["content-type"] == "application/json")
        #expect(response.headers["x-thing"] == "a")
        let head = try #require(server.requests.first).head
        #expect(head.hasPrefix("POST /p?q=1 HTTP/1.1"))
        #expect(head.contains("Authorization: Bearer t0k"))
        #expect(server.requests.first?.bodyLength == 5)
    }

    @Test(arguments: [(503, true), (429, true), (408, true), (500, true), (404, false), (400, false), (401, false)])
    func nonSuccessStatusesAreReturnedAndClassified(status: Int, transient: Bool) async throws {
        let server = try ScriptedHTTPServer { _ in
            .respond(ScriptedHTTPServer.response(status: status, reason: "X", body: Array("{\"error\":1}".utf8)))
        }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let response = try await onThread { try client.get(url(server), maxBytes: 1000) }
        #expect(response.status == status)
        #expect(response.body == Array("{\"error\":1}".utf8))
        #expect(HTTPError(kind: .status(status), message: "").isTransient == transient)
    }

    @Test func redirectsAreReturnedNotFollowed() async throws {
        let server = try ScriptedHTTPServer { _ in
            .respond(ScriptedHTTPServer.response(status: 302, reason: "Found", headers: ["Location": "http://127.0.0.1:1/elsewhere"]))
        }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let response = try await onThread { try client.get(url(server), headers: ["Authorization": "Basic eDp5"], maxBytes: 1000) }
        #expect(response.status == 302)
        #expect(server.requests.count == 1)
    }

    @Test func connectionRefusedIsUnreachableAndTransient() async throws {
        let port = try LoopbackHTTP.freePort()
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let target = URL(string: "http://127.0.0.1:\(port)/dicom-web/studies")!
        let error = try #require(await onThread { fails { () throws(HTTPError) in try client.get(target, maxBytes: 100) } })
        #expect(error.kind == .unreachable)
        #expect(error.isTransient)
        #expect(error.message.contains("127.0.0.1:\(port)"))
        #expect(!error.message.contains("dicom-web"))
    }

    @Test func declaredLengthAboveTheLimitFailsBeforeTheBody() async throws {
        // Declares 100 MB, sends one 1 KB chunk and then nothing: only the header can end this
        // before the time-out.
        let server = try ScriptedHTTPServer { _ in
            .stream(
                head: Array("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n".utf8),
                chunk: [UInt8](repeating: 7, count: 1024), count: 1)
        }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let error = try #require(await onThread { fails { () throws(HTTPError) in try client.get(url(server), maxBytes: 64 * 1024) } })
        #expect(error.kind == .tooLarge(limit: 64 * 1024))
        #expect(!error.isTransient)
        #expect(error.message.contains("100000000"))
        // .tooLarge rather than .timeout (5 s) shows it stopped at the header; no speed assumption.
    }

    @Test func chunkedBodyIsCutOffWhileItIsRead() async throws {
        // A chunked body of 256 MiB in 64 KiB chunks, paced at about 16 MiB/s (a fast PACS, not
        // a loopback flood that saturates both cores). The client must cancel after 256 KiB, so
        // the server gets nowhere near the end: what it writes is what the client read plus the
        // socket buffers (a few MiB); half the body would take a stall of 8 s.
        let chunkData = [UInt8](repeating: 0x41, count: 65536)
        let chunk = Array("10000\r\n".utf8) + chunkData + Array("\r\n".utf8)
        let total = 4096 * chunk.count
        let server = try ScriptedHTTPServer { _ in
            .stream(
                head: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8),
                chunk: chunk, count: 4096, pauseMicroseconds: 4000)
        }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 10))
        let error = try #require(await onThread { fails { () throws(HTTPError) in try client.get(url(server), maxBytes: 256 * 1024) } })
        #expect(error.kind == .tooLarge(limit: 256 * 1024))
        // .tooLarge rather than .timeout (10 s) shows the cut-off; the server's count below shows
        // that it came while reading. No assertion on speed.
        // Give the server thread a moment to notice the closed connection.
        try await Task.sleep(for: .milliseconds(500))
        #expect(server.bytesWritten < total / 2, "the server wrote \(server.bytesWritten) of \(total) bytes")
    }

    @Test func bodyWithinTheLimitIsComplete() async throws {
        let chunkData = [UInt8](repeating: 0x42, count: 4096)
        let chunk = Array("1000\r\n".utf8) + chunkData + Array("\r\n".utf8)
        let ended = try ScriptedHTTPServer { _ in
            .respond(
                Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)
                    + chunk + chunk + Array("0\r\n\r\n".utf8))
        }
        defer { ended.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let response = try await onThread { try client.get(url(ended), maxBytes: 8192) }
        #expect(response.body == chunkData + chunkData)
        // Exactly at the declared limit is fine too.
        let exact = try ScriptedHTTPServer { _ in .respond(ScriptedHTTPServer.response(status: 200, reason: "OK", body: chunkData)) }
        defer { exact.stop() }
        #expect(try await onThread { try client.get(url(exact), maxBytes: 4096) }.body.count == 4096)
    }

    @Test func serverThatNeverAnswersTimesOut() async throws {
        let server = try ScriptedHTTPServer { _ in .hang }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 0.5))
        let start = ContinuousClock.now
        let error = try #require(await onThread { fails { () throws(HTTPError) in try client.get(url(server), maxBytes: 100) } })
        let elapsed = ContinuousClock.now - start
        #expect(error.kind == .timeout)
        #expect(error.isTransient)
        // Not before the deadline; the upper bound only guards against a hang (a loaded machine is slow).
        #expect(elapsed >= .milliseconds(450) && elapsed < .seconds(30), "took \(elapsed)")
        #expect(server.requests.count == 1)
    }

    @Test func missingCAFileFailsHTTPSWithoutAConnection() async throws {
        let client = HTTPClient(options: .init(timeoutSeconds: 2, caFile: "/nonexistent/ca.pem"))
        let error = try #require(await onThread {
            fails { () throws(HTTPError) in try client.get(URL(string: "https://127.0.0.1:1/")!, maxBytes: 100) }
        })
        #expect(error.kind == .unreachable)
        #expect(error.message.contains("CA file"))
    }

    @Test func caFileIsTrustedForHTTPSBesideTheSystemStore() async throws {
        // A CA of the test's own (not in the system store) signs the certificate of a loopback
        // HTTPS server: with the CA file the exchange succeeds, without it TLS fails.
        let dir = try TemporaryDirectory()
        func openssl(_ arguments: [String]) throws {
            let result = try runToCompletion("/usr/bin/openssl", arguments, currentDirectory: dir.path)
            try #require(result.status == 0, "openssl \(arguments.first ?? ""): \(result.stderr)")
        }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                     "-subj", "/CN=universeg test CA"])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"])
        try dir.write("server.ext", Array("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n".utf8))
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "server.pem", "-days", "2", "-extfile", "server.ext"])
        let server = try HTTPSTestServer(certificate: dir.path + "/server.pem", key: dir.path + "/server.key")
        defer { server.stop() }
        let target = URL(string: "https://127.0.0.1:\(server.port)/studies/1.2.3")!

        let trusting = HTTPClient(options: .init(timeoutSeconds: 10, caFile: dir.path + "/ca.pem"))
        let response = try await onThread { try trusting.get(target, maxBytes: 100) }
        #expect(response.status == 200)
        #expect(response.body == Array("tls ok".utf8))

        let plain = HTTPClient(options: .init(timeoutSeconds: 10))
        let error = try #require(await onThread { fails { () throws(HTTPError) in try plain.get(target, maxBytes: 100) } })
        #expect(error.kind == .unreachable)
        #expect(error.message.contains("TLS failure"), "\(error.message)")
        #expect(!error.message.contains("studies"))
    }

    @Test func headersThatWouldSplitTheRequestAreRefused() async throws {
        let server = try ScriptedHTTPServer { _ in .respond(ScriptedHTTPServer.response(status: 200, reason: "OK")) }
        defer { server.stop() }
        let client = HTTPClient(options: .init(timeoutSeconds: 5))
        let error = try #require(await onThread {
            fails { () throws(HTTPError) in
                try client.get(url(server), headers: ["Authorization": "Bearer a\r\nX-Injected: 1"], maxBytes: 100)
            }
        })
        #expect(error.kind == .invalidResponse)
        #expect(server.requests.isEmpty)
    }

    @Test func transientClassification() {
        #expect(HTTPError(kind: .unreachable, message: "").isTransient)
        #expect(HTTPError(kind: .timeout, message: "").isTransient)
        #expect(!HTTPError(kind: .tooLarge(limit: 1), message: "").isTransient)
        #expect(!HTTPError(kind: .invalidResponse, message: "").isTransient)
        #expect(HTTPError(kind: .status(599), message: "").isTransient)
        #expect(!HTTPError(kind: .status(409), message: "").isTransient)
    }
}

/// Python's http.server behind TLS on a loopback port (any free one), answering GET with "tls ok".
private final class HTTPSTestServer: Sendable {
    let port: Int
    private let process: Process

    init(certificate: String, key: String) throws {
        let script = """
            import http.server, ssl, sys
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = b"tls ok"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args):
                    pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            server.socket = context.wrap_socket(server.socket, server_side=True)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, certificate, key]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // exited
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(process.processIdentifier, SIGKILL)
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "the HTTPS test server did not start"])
        }
        self.port = port
        self.process = process
    }

    func stop() {
        // SIGKILL: a child spawned from a test thread may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
