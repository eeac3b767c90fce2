/// The executor's bookkeeping as a value type: requests taken from Kafka and not yet finished,
/// in order, with the offsets they hold (`OffsetTracker`), the slots in use, and the outages they
/// wait for (`DependencyGate`). Every method returns a decision; the worker performs it (starts a
/// thread, publishes, stores an offset, logs). So the rules (order, retry, revocation, stopping)
/// are tested without Kafka.
///
/// - A request is accepted (its offset starts being tracked), started when a slot is free and no
///   outage holds the executor, and finished once: either for good (then its records are published
///   and, once acknowledged, `delivered` says which offset may be stored) or transiently (then it
///   goes back in arrival order, before every later request, and waits for the retry time).
/// - Revoking partitions drops their waiting requests and forgets their offsets; a request of a
///   revoked partition that is running finishes, but stores nothing (the new owner redoes it).
public struct RequestQueue<Payload: Sendable>: Sendable {
    public struct Job: Sendable {
        public let partition: OffsetTracker.Key
        public let offset: Int64
        public let received: ContinuousClock.Instant
        /// Arrival order: a job put back after a transient failure goes before later ones.
        public let sequence: UInt64
        /// The dependency this job last failed on (it waits for it to come back).
        public internal(set) var waitingOn: String?
        public let payload: Payload
    }

    /// What to do with a job that finished.
    public enum Finish: Sendable, Equatable {
        /// Publish its records (result, dead letter, metrics); `dependency` came back if set.
        case publish(cameBack: (dependency: String, downFor: Duration)?)
        /// It waits for `dependency`: retried in `retryIn`; `wentDown` on the first failure.
        case retry(dependency: String, wentDown: Bool, failures: Int, retryIn: Duration)
        /// A transient failure while stopping, or of a revoked partition: not retried here, its
        /// offset is not stored (redelivered to whoever owns the partition next).
        case abandon(dependency: String)

        public static func == (a: Finish, b: Finish) -> Bool {
            switch (a, b) {
            case (.publish(let x), .publish(let y)): x?.dependency == y?.dependency && x?.downFor == y?.downFor
            case (.retry(let d1, let w1, let f1, let r1), .retry(let d2, let w2, let f2, let r2)): d1 == d2 && w1 == w2 && f1 == f2 && r1 == r2
            case (.abandon(let x), .abandon(let y)): x == y
            default: false
            }
        }
    }

    public let maxRunning: Int
    public private(set) var tracker = OffsetTracker()
    public private(set) var waiting: [Job] = []
    public private(set) var running = 0
    public private(set) var gate: DependencyGate
    private var nextSequence: UInt64 = 0

    public init(maxRunning: Int, retryPolicy: RetryPolicy = RetryPolicy()) {
        self.maxRunning = maxRunning
        self.gate = DependencyGate(policy: retryPolicy)
    }

    /// Requests taken and not finished (waiting + running).
    public var load: Int { waiting.count + running }
    /// Offsets held (accepted, not yet delivered or dropped).
    public var inFlight: Int { tracker.inFlight }
    public var isWaitingOnDependency: Bool { gate.isAnyDown }

    public mutating func accept(_ payload: Payload, partition: OffsetTracker.Key, offset: Int64, now: ContinuousClock.Instant) {
        tracker.started(partition, offset: offset)
        waiting.append(Job(partition: partition, offset: offset, received: now, sequence: nextSequence, waitingOn: nil, payload: payload))
        nextSequence += 1
    }

    /// The next job to start, if a slot is free and no outage holds the executor at `now`.
    public mutating func next(now: ContinuousClock.Instant) -> Job? {
        guard running < maxRunning, !waiting.isEmpty, gate.mayStart(now: now) else { return nil }
        running += 1
        return waiting.removeFirst()
    }

    /// `job` finished; `transient` names the dependency (and why) when it failed transiently.
    /// `unit` is a random number in 0 ..< 1 for the retry jitter.
    public mutating func finished(_ job: Job, transient: (dependency: String, reason: String)?, stopping: Bool,
                                  now: ContinuousClock.Instant, unit: Double) -> Finish {
        running -= 1
        if let transient {
            guard tracker.isTracked(job.partition), !stopping else {
                if stopping { tracker.revoked([job.partition]) }
                return .abandon(dependency: transient.dependency)
            }
            var again = job
            again.waitingOn = transient.dependency
            waiting.insert(again, at: waiting.firstIndex { $0.sequence > job.sequence } ?? waiting.endIndex)
            let (change, wait) = gate.failed(transient.dependency, reason: transient.reason, now: now, unit: unit)
            switch change {
            case .stillDown(let failures): return .retry(dependency: transient.dependency, wentDown: false, failures: failures, retryIn: wait)
            default: return .retry(dependency: transient.dependency, wentDown: true, failures: 1, retryIn: wait)
            }
        }
        if let dependency = job.waitingOn, case .cameBack(let downFor) = gate.succeeded(dependency, now: now) {
            return .publish(cameBack: (dependency, downFor))
        }
        return .publish(cameBack: nil)
    }

    /// Every record of `job` was acknowledged: the offset that may now be stored (nil while an
    /// earlier offset of the partition is unfinished, or when the partition was revoked).
    public mutating func delivered(_ job: Job) -> Int64? {
        tracker.finished(job.partition, offset: job.offset)
    }

    /// An offset that needs no processing (a replay record outside the time range): tracked and
    /// finished at once, so the stored offset still moves past it in order.
    public mutating func skip(partition: OffsetTracker.Key, offset: Int64) -> Int64? {
        tracker.started(partition, offset: offset)
        return tracker.finished(partition, offset: offset)
    }

    /// Partitions revoked or lost: their waiting jobs are dropped (returned count) and their
    /// offsets forgotten; an outage no remaining job waits on is forgotten too.
    public mutating func revoke(_ partitions: Set<OffsetTracker.Key>) -> Int {
        tracker.revoked(Array(partitions))
        let before = waiting.count
        waiting.removeAll { partitions.contains($0.partition) }
        for dependency in gate.down.keys where !waiting.contains(where: { $0.waitingOn == dependency }) {
            gate.forget(dependency)
        }
        return before - waiting.count
    }

    /// Stopping during an outage: the waiting jobs are not retried; their partitions keep their
    /// stored offsets and the requests are redelivered. Returns how many were dropped.
    public mutating func dropWaitingForShutdown() -> Int {
        guard gate.isAnyDown else { return 0 }
        let count = waiting.count
        tracker.revoked(Array(Set(waiting.map(\.partition))))
        waiting.removeAll()
        for dependency in gate.down.keys { gate.forget(dependency) }
        return count
    }
}
