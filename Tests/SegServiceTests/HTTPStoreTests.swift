import Foundation
import SegIO
import SegOperations
import SegService
import SegTesting
import Testing

/// The http(s):// store backend against a real HTTP server on a loopback socket (the project's
/// HTTPEndpoint serving the files of a TestStore, as nginx would serve a static tree).
struct HTTPStoreTests {
    final class Hits: @unchecked Sendable {  // guarded by `lock`
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func add(_ path: String) { lock.withLock { counts[path, default: 0] += 1 } }
        var all: [String: Int] { lock.withLock { counts } }
    }

    /// Serves `store.root` read-only under /sets/; /err/... answers 500; counts requests per path.
    static func serve(_ store: TestStore, hits: Hits) throws -> HTTPEndpoint {
        let root = store.root
        let endpoint = try HTTPEndpoint(address: "127.0.0.1:0") { path in
            hits.add(path)
            if path.hasPrefix("/err/") { return .init(status: 500, body: "boom") }
            let relative = path.hasPrefix("/sets/") ? String(path.dropFirst(6)) : String(path.dropFirst())
            guard !relative.contains(".."), let data = FileManager.default.contents(atPath: root + "/" + relative) else {
                return .init(status: 404, body: "not found")
            }
            return .init(status: 200, contentType: "application/octet-stream", bytes: [UInt8](data))
        }
        endpoint.start()
        return endpoint
    }

    @Test func httpStoreLoadsTheSameSupportSetAsTheFileStore() throws {
        let files = try TestStore()
        let hits = Hits()
        let server = try Self.serve(files, hits: hits)
        defer { server.stop() }
        let http = try SupportSetStore(url: "http://127.0.0.1:\(server.port)/sets", httpTimeout: 5)
        let local = try SupportSetStore(url: "file://" + files.root)

        #expect(try http.latestVersion(of: "blobs") == "2")
        let manifest = try http.manifest(id: "blobs", version: "2")
        #expect(manifest == (try local.manifest(id: "blobs", version: "2")))
        let remote = try http.load(id: "blobs", version: "2", manifestBytes: manifest, size: 16)
        let onDisk = try local.load(id: "blobs", version: "2", manifestBytes: manifest, size: 16)
        #expect(remote.sha256 == onDisk.sha256)
        #expect(remote.tensors == onDisk.tensors)
        #expect(try http.image(storePath: "queries/q.png") == (try local.image(storePath: "queries/q.png")))
        #expect(hits.all["/sets/blobs/2/images/0.png"] == 1)
    }

    static func code(_ body: () throws -> Any) -> ServiceError.Code? {
        do {
            _ = try body()
            return nil
        } catch {
            return (error as? ServiceError)?.code
        }
    }

    @Test func missingSetsAndServerErrorsGiveStableCodes() throws {
        let files = try TestStore()
        let hits = Hits()
        let server = try Self.serve(files, hits: hits)
        defer { server.stop() }
        let http = try SupportSetStore(url: "http://127.0.0.1:\(server.port)/sets", httpTimeout: 5)
        #expect(Self.code { try http.latestVersion(of: "nope") } == .supportSetNotFound)
        #expect(Self.code { try http.manifest(id: "blobs", version: "9") } == .supportSetNotFound)
        // Traversal never reaches the server.
        #expect(Self.code { try http.manifest(id: "..", version: "1") } == .invalidRequest)
        #expect(hits.all.keys.contains { $0.contains("..") } == false)
        let broken = try SupportSetStore(url: "http://127.0.0.1:\(server.port)/err", httpTimeout: 5)
        // HTTP 500 and nothing listening: transient failures of the store, not of the request.
        #expect(Self.transient { try broken.latestVersion(of: "blobs") } == "store")
        let closed = try SupportSetStore(url: "http://127.0.0.1:1/sets", httpTimeout: 2)
        #expect(Self.transient { try closed.latestVersion(of: "blobs") } == "store")
        #expect(Self.transient { try http.latestVersion(of: "nope") } == nil)
    }

    /// The dependency a transient failure names (nil for success or a permanent failure).
    static func transient(_ body: () throws -> Any) -> String? {
        do {
            _ = try body()
            return nil
        } catch {
            guard let e = error as? ServiceError, e.isTransient, e.code == .dependencyUnavailable else { return nil }
            return e.dependency
        }
    }

    /// A file store whose root is gone (an NFS mount that disappeared) is a transient failure;
    /// a missing support set under a readable root is the request's fault.
    @Test func aMissingFileStoreRootIsTransient() throws {
        let files = try TestStore()
        let gone = try SupportSetStore(url: "file://" + files.root + "/not-mounted")
        #expect(Self.transient { try gone.latestVersion(of: "blobs") } == "store")
        #expect(Self.transient { try gone.manifest(id: "blobs", version: "2") } == "store")
        let local = try SupportSetStore(url: "file://" + files.root)
        #expect(Self.code { try local.latestVersion(of: "nope") } == .supportSetNotFound)
    }

    /// The store's size bound holds while the body is read: a declared Content-Length above the
    /// limit fails before any body byte is read, and a chunked body without one is cut off as it
    /// arrives (the server manages to write only a fraction of it).
    @Test func anOversizedStoreAnswerIsCutOffWhileItIsRead() throws {
        // Declares 900 MB and keeps sending (slowly): the client must stop at the header.
        let declared = try ScriptedHTTPServer { _ in
            .stream(head: Array("HTTP/1.1 200 OK\r\nContent-Length: 900000000\r\nConnection: close\r\n\r\n".utf8),
                    chunk: [UInt8](repeating: 0x7b, count: 65536), count: 13733, pauseMicroseconds: 4000)
        }
        defer { declared.stop() }
        let store = try SupportSetStore(url: "http://127.0.0.1:\(declared.port)/sets", limits: SupportSetLimits(maxManifestBytes: 4096), httpTimeout: 5)
        #expect(Self.code { try store.manifest(id: "blobs", version: "1") } == .supportSetInvalid)
        #expect(Self.code { try store.image(storePath: "queries/q.png") } == .imageTooLarge)
        Thread.sleep(forTimeInterval: 0.5)
        // Paced at 16 MiB/s, half of the 900 MB would take 28 s: the client stopped at the header.
        #expect(declared.bytesWritten < 450_000_000, "the server wrote \(declared.bytesWritten) bytes")

        let chunk = Array("10000\r\n".utf8) + [UInt8](repeating: 0x7b, count: 65536) + Array("\r\n".utf8)
        let streaming = try ScriptedHTTPServer { _ in
            .stream(head: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8),
                    chunk: chunk, count: 4096, pauseMicroseconds: 4000)
        }
        defer { streaming.stop() }
        let chunked = try SupportSetStore(url: "http://127.0.0.1:\(streaming.port)/sets", limits: SupportSetLimits(maxManifestBytes: 256 * 1024), httpTimeout: 10)
        // support_set_invalid, not a transient timeout (10 s): cut off while reading.
        #expect(Self.code { try chunked.manifest(id: "blobs", version: "1") } == .supportSetInvalid)
        Thread.sleep(forTimeInterval: 0.5)
        // Paced at 16 MiB/s: half of the 256 MiB would take 8 s.
        #expect(streaming.bytesWritten < 4096 * chunk.count / 2, "the server wrote \(streaming.bytesWritten) of \(4096 * chunk.count) bytes")
    }
}
