internal import Foundation
public import SegIO
internal import SegModel
internal import Synchronization

/// An LRU cache of preprocessed support sets, bounded in bytes, keyed by id, version and the
/// SHA-256 of the manifest, with in-flight de-duplication: concurrent requests for the same
/// set wait for one load instead of loading it twice. Versions are treated as immutable; a
/// changed manifest (another hash) is a different entry.
public final class SupportSetCache: Sendable {
    public struct Key: Hashable, Sendable {
        public let id: String
        public let version: String
        public let manifestSHA256: String
    }

    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var bytes = 0
        public var entries = 0
    }

    private final class Pending: @unchecked Sendable {  // result written once, before `done` opens
        let done = DispatchSemaphore(value: 0)
        var result: Result<LoadedSupportSet, any Error>?
    }

    private struct State {
        var entries: [Key: (set: LoadedSupportSet, lastUse: UInt64)] = [:]
        var pending: [Key: Pending] = [:]
        var clock: UInt64 = 0
        var statistics = Statistics()
    }

    private let state = Mutex(State())
    public let maxBytes: Int

    public init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// The cached set for `key`, or the result of `load()` (run once for concurrent callers).
    public func value(for key: Key, load: () throws -> LoadedSupportSet) throws -> (set: LoadedSupportSet, hit: Bool) {
        enum Step { case hit(LoadedSupportSet), wait(Pending), load(Pending) }
        let step: Step = state.withLock { s in
            s.clock += 1
            if let entry = s.entries[key] {
                s.entries[key]!.lastUse = s.clock
                s.statistics.hits += 1
                return .hit(entry.set)
            }
            if let pending = s.pending[key] {
                s.statistics.hits += 1
                return .wait(pending)
            }
            let pending = Pending()
            s.pending[key] = pending
            s.statistics.misses += 1
            return .load(pending)
        }
        switch step {
        case .hit(let set):
            return (set, true)
        case .wait(let pending):
            pending.done.wait()
            pending.done.signal()  // let the next waiter through
            return (try pending.result!.get(), true)
        case .load(let pending):
            let result = Result { try load() }
            pending.result = result
            state.withLock { s in
                s.pending[key] = nil
                if case .success(let set) = result, set.tensors.byteCount <= maxBytes {
                    s.clock += 1
                    s.entries[key] = (set, s.clock)
                    s.statistics.bytes += set.tensors.byteCount
                    while s.statistics.bytes > maxBytes, let oldest = s.entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                        s.entries[oldest.key] = nil
                        s.statistics.bytes -= oldest.value.set.tensors.byteCount
                    }
                }
                s.statistics.entries = s.entries.count
            }
            pending.done.signal()
            return (try result.get(), false)
        }
    }
}
