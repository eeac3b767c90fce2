/// Which dependencies (support-set store, DICOMweb servers) are down, and until when the executor
/// holds back before it tries again. A value type: the worker asks it for decisions and performs
/// them (logs, metrics, pausing), so its rules are tested without Kafka.
///
/// - A transient failure marks its dependency down (or counts one more failure of it) and sets
///   the hold: no request starts before `retryAt`, which follows the retry policy.
/// - A request that waited on a dependency and then finished (ok or a permanent failure) marks
///   that dependency up again.
/// - While any dependency is down, the worker keeps its partitions paused, so nothing more is
///   fetched; polling goes on, so the group membership holds however long the outage lasts.
public struct DependencyGate: Sendable, Equatable {
    public struct Down: Sendable, Equatable {
        public var since: ContinuousClock.Instant
        public var failures: Int
        public var reason: String
    }

    public enum Change: Sendable, Equatable {
        /// The dependency was up and is now down.
        case wentDown
        /// It was already down; `failures` in a row now.
        case stillDown(failures: Int)
        /// It was down for `downFor` and works again.
        case cameBack(downFor: Duration)
        case none
    }

    public let policy: RetryPolicy
    public private(set) var down: [String: Down] = [:]
    /// No request starts before this instant (nil: no hold).
    public private(set) var retryAt: ContinuousClock.Instant?

    public init(policy: RetryPolicy = RetryPolicy()) {
        self.policy = policy
    }

    public var isAnyDown: Bool { !down.isEmpty }

    /// Whether the executor may start a request at `now`.
    public func mayStart(now: ContinuousClock.Instant) -> Bool {
        guard let retryAt else { return true }
        return now >= retryAt
    }

    /// A request failed transiently on `dependency`. `unit` is a random number in 0 ..< 1 (jitter).
    public mutating func failed(_ dependency: String, reason: String, now: ContinuousClock.Instant,
                                unit: Double) -> (change: Change, retryIn: Duration) {
        let change: Change
        var entry: Down
        if var existing = down[dependency] {
            existing.failures += 1
            existing.reason = reason
            entry = existing
            change = .stillDown(failures: existing.failures)
        } else {
            entry = Down(since: now, failures: 1, reason: reason)
            change = .wentDown
        }
        down[dependency] = entry
        let wait = policy.delay(afterFailures: entry.failures, unit: unit)
        let at = now + wait
        // Several requests failing at once: the latest decision wins, never an earlier retry.
        if let current = retryAt, current > at { retryAt = current } else { retryAt = at }
        return (change, wait)
    }

    /// A request that had waited on `dependency` finished without a transient failure.
    public mutating func succeeded(_ dependency: String, now: ContinuousClock.Instant) -> Change {
        guard let entry = down.removeValue(forKey: dependency) else { return .none }
        if down.isEmpty { retryAt = nil }
        return .cameBack(downFor: now - entry.since)
    }

    /// Forgets `dependency` without evidence that it is back: no request waits on it any more
    /// (its partition was revoked, or the worker is stopping). The next request that needs it finds out.
    public mutating func forget(_ dependency: String) {
        down[dependency] = nil
        if down.isEmpty { retryAt = nil }
    }
}
