import Dispatch

/// Runs blocking work (librdkafka polls, flush, close, process waits) on a Dispatch thread, never
/// on the Swift cooperative pool, which has only as many threads as cores (2 here) and is shared
/// by all tests.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
