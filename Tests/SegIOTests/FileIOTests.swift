import Foundation
import SegIO
import SegTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct FileIOTests {
    /// Bytes that differ at every position of a period that is not a power of two.
    func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(($0 * 7 + $0 / 251) % 256) } }

    @Test(arguments: [0, 1, 4095, 4096, (1 << 20) + 3, 3 << 20])
    func readsEveryByteOfARegularFile(count: Int) throws {
        let dir = try TemporaryDirectory()
        let bytes = pattern(count)
        try dir.write("f.bin", bytes)
        #expect(try FileIO.read(dir.path + "/f.bin", maxBytes: 4 << 20) == bytes)
        // Exactly at the limit is allowed.
        #expect(try FileIO.read(dir.path + "/f.bin", maxBytes: count) == bytes)
    }

    @Test func filesAboveTheLimitAreRefused() throws {
        let dir = try TemporaryDirectory()
        try dir.write("f.bin", pattern(1000))
        let error = #expect(throws: IOError.self) { try FileIO.read(dir.path + "/f.bin", maxBytes: 999) }
        #expect(error?.code == .fileTooLarge)
    }

    @Test func missingFilesDirectoriesAndFIFOsAreRefusedWithoutBlocking() throws {
        let dir = try TemporaryDirectory()
        let missing = #expect(throws: IOError.self) { try FileIO.read(dir.path + "/absent.png", maxBytes: 100) }
        #expect(missing?.code == .fileNotFound)
        try dir.write("plain", [1])
        let underFile = #expect(throws: IOError.self) { try FileIO.read(dir.path + "/plain/child.png", maxBytes: 100) }
        #expect(underFile?.code == .fileNotFound)
        let directory = #expect(throws: IOError.self) { try FileIO.read(dir.path, maxBytes: 100) }
        #expect(directory?.code == .notARegularFile)
        // Opening a FIFO for reading blocks until a writer comes; it must be refused before that.
        #expect(mkfifo(dir.path + "/pipe.png", 0o600) == 0)
        let fifo = #expect(throws: IOError.self) { try FileIO.read(dir.path + "/pipe.png", maxBytes: 100) }
        #expect(fifo?.code == .notARegularFile)
        let device = #expect(throws: IOError.self) { try FileIO.read("/dev/zero", maxBytes: 100) }
        #expect(device?.code == .notARegularFile)
    }

    @Test func aSymlinkToARegularFileIsRead() throws {
        let dir = try TemporaryDirectory()
        try dir.write("target.bin", pattern(300))
        #expect(symlink(dir.path + "/target.bin", dir.path + "/link.bin") == 0)
        #expect(try FileIO.read(dir.path + "/link.bin", maxBytes: 300) == pattern(300))
    }
}
