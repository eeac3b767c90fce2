import Dispatch
import Foundation

/// Runs blocking work (librdkafka polls, flush, close, process waits) on a Dispatch thread, never
/// on the Swift cooperative pool, which has only as many threads as cores (2 here) and is shared
/// by all tests.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// Runs blocking work on a new dedicated thread (neither the Swift pool nor Dispatch's global
/// pool), as the worker runs requests: for work that blocks for long (HTTP exchanges, a child
/// process), occupying Dispatch's few global threads with waits starves whatever else runs on
/// them (on Linux, Dispatch adds threads for blocked ones only after a delay).
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
