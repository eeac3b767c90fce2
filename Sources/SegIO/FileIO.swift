internal import Foundation
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif

/// Bounded whole-file reads and atomic writes.
public enum FileIO {
    /// Reads a regular file of at most `maxBytes` bytes. Anything else (a directory, a FIFO,
    /// whose open would block, a device) is refused before it is opened.
    public static func read(_ path: String, maxBytes: Int) throws -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw IOError(.fileNotFound, "\(path): no such file") }
            throw IOError(.readFailed, "\(path): cannot be examined")
        }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw IOError(.notARegularFile, "\(path): is a directory") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw IOError(.notARegularFile, "\(path): not a regular file") }
        if Int(info.st_size) > maxBytes {
            throw IOError(.fileTooLarge, "\(path): \(info.st_size) bytes, above the limit of \(maxBytes)")
        }
        // O_NONBLOCK: should the path have been replaced by a FIFO since `stat`, open does not block
        // (it is then refused below); it changes nothing for regular files.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw IOError(.readFailed, "\(path): cannot be opened for reading") }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw IOError(.notARegularFile, "\(path): not a regular file")
        }
        // Read into arrays sized from the file (no zeroing, no intermediate copy); a file that grew
        // since `stat` is read on in chunks. One byte past the limit tells a file that is too large.
        var bytes: [UInt8] = []
        var chunkSize = min(Int(info.st_size), maxBytes) + 1
        while true {
            var failed = false
            let chunk = [UInt8](unsafeUninitializedCapacity: chunkSize) { buffer, initialized in
                initialized = 0
                while initialized < chunkSize, let base = buffer.baseAddress {
                    let n = systemRead(fd, base + initialized, chunkSize - initialized)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { failed = true }
                    if n <= 0 { return }
                    initialized += n
                }
            }
            if failed { throw IOError(.readFailed, "\(path): read failed") }
            if bytes.isEmpty { bytes = chunk } else { bytes += chunk }
            guard bytes.count <= maxBytes else {
                throw IOError(.fileTooLarge, "\(path): above the limit of \(maxBytes) bytes")
            }
            if chunk.count < chunkSize { return bytes }
            chunkSize = min(1 << 20, maxBytes + 1 - bytes.count)
        }
    }

    /// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
    /// so a reader never sees a half-written file.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw IOError(.writeFailed, "\(path): cannot be written (\(error.localizedDescription))")
        }
    }
}
