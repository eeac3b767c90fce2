internal import Foundation
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Bounded whole-file reads and atomic writes.
public enum FileIO {
    /// Reads a regular file of at most `maxBytes` bytes. Anything else (a directory, a FIFO,
    /// whose open would block, a device) is refused before it is opened.
    public static func read(_ path: String, maxBytes: Int) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw IOError(.fileNotFound, "\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw IOError(.notARegularFile, "\(path): is a directory") }
        var info = stat()
        guard stat(path, &info) == 0 else { throw IOError(.readFailed, "\(path): cannot be examined") }
        guard Int(info.st_mode) & Int(S_IFMT) == Int(S_IFREG) else { throw IOError(.notARegularFile, "\(path): not a regular file") }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = (attributes?[.size] as? NSNumber)?.intValue, size > maxBytes {
            throw IOError(.fileTooLarge, "\(path): \(size) bytes, above the limit of \(maxBytes)")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw IOError(.readFailed, "\(path): cannot be opened for reading")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        } catch {
            throw IOError(.readFailed, "\(path): read failed")
        }
        guard data.count <= maxBytes else {
            throw IOError(.fileTooLarge, "\(path): above the limit of \(maxBytes) bytes")
        }
        return [UInt8](data)
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
