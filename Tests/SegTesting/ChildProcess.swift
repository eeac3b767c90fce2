import Dispatch
import Foundation
import Synchronization

/// Exit status and output of a child process that ran to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs `executable` with `arguments` and waits for it to exit; standard input is /dev/null.
///
/// Standard output and standard error are read to their ends by two threads at the same time, so
/// a child that fills one pipe while the other is being read cannot block. This is for commands
/// that run to completion; children that a test signals mid-run (the worker, the broker, Orthanc)
/// are started with `Process` directly.
/// - environment: added to (and overriding) this process's environment.
/// - currentDirectory: the child's working directory (this process's when nil).
/// - combineOutput: standard error goes into the standard output pipe, interleaved as the child
///   writes it; `stderr` is then empty.
public func runToCompletion(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    currentDirectory: String? = nil, combineOutput: Bool = false
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = Pipe(), err = Pipe()
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = combineOutput ? out : err
    try process.run()
    let outReader = PipeDrain(out)
    let errReader = combineOutput ? nil : PipeDrain(err)
    let outData = outReader.wait()
    let errData = errReader?.wait() ?? Data()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Reads a pipe to its end on a thread of its own.
private final class PipeDrain: Sendable {
    private let data = Mutex(Data())
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        Thread.detachNewThread { [self] in
            let bytes = pipe.fileHandleForReading.readDataToEndOfFile()
            data.withLock { $0 = bytes }
            done.signal()
        }
    }

    /// Waits for the end of the pipe and returns everything read.
    func wait() -> Data {
        done.wait()
        return data.withLock { $0 }
    }
}
