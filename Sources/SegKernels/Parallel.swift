internal import Dispatch
internal import Synchronization

/// Data-parallel loops for the memory-bound passes around the GEMMs (im2col, Winograd
/// transforms), run synchronously on Dispatch's worker threads. The GEMMs themselves are
/// threaded by OpenBLAS; `BLAS.setThreadCount` sets both.
public enum Parallel {
    private static let workers = Atomic<Int>(1)

    /// Threads used by `forEachChunk` (at least 1).
    public static var threadCount: Int {
        get { workers.load(ordering: .relaxed) }
        set { workers.store(max(1, newValue), ordering: .relaxed) }
    }

    /// Splits 0..<count into at most `threadCount` contiguous chunks and runs `body` on each,
    /// in parallel; returns when all are done. Small loops run inline.
    public static func forEachChunk(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachChunk(count, maxChunks: threadCount, minimumPerChunk: minimumPerChunk) { _, range in body(range) }
    }

    /// As `forEachChunk`, with at most `maxChunks` chunks, passing each chunk's index
    /// (0..<maxChunks) so that a chunk can use its own scratch memory.
    public static func forEachChunk(_ count: Int, maxChunks: Int, minimumPerChunk: Int = 1,
                                    _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
        let chunks = min(maxChunks, threadCount, max(1, count / max(1, minimumPerChunk)))
        if chunks <= 1 {
            body(0, 0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            // The chunks are disjoint and `concurrentPerform` returns only after every
            // iteration has finished, so sharing the non-Sendable closure is safe here.
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { i in
                let lo = count * i / chunks, hi = count * (i + 1) / chunks
                if lo < hi { shared.value(i, lo..<hi) }
            }
        }
    }
}

extension Parallel {
    /// Runs `body(worker, item)` once for every item in 0..<count on up to `maxWorkers` threads
    /// (the caller chooses; `threadCount` is not applied here). Items are handed out in
    /// increasing order from a shared counter (dynamic scheduling), so a thread that is held up
    /// (another process on its core) takes fewer items instead of holding up the others.
    /// `worker` is in 0..<maxWorkers and no two concurrent calls share it, so it can index
    /// per-thread scratch memory. Returns when every item is done.
    public static func forEachItem(_ count: Int, maxWorkers: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
        let workers = min(maxWorkers, count)
        if workers <= 1 {
            for i in 0..<count { body(0, i) }
            return
        }
        let next = Counter()
        withoutActuallyEscaping(body) { body in
            // Every item index is claimed exactly once, and `concurrentPerform` returns only
            // after every iteration has finished, so sharing the closure is safe here.
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let item = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                    if item >= count { break }
                    shared.value(worker, item)
                }
            }
        }
    }
}

private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
