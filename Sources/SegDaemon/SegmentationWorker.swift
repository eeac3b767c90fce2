internal import Foundation
public import SegKafka
public import SegModel
internal import SegKernels
internal import SegIO
public import SegService
internal import Synchronization

/// The `serve` pipeline: Kafka requests in, results (and dead-letter records) out, at least once.
///
/// - The poll loop runs on the caller's thread and never blocks on inference, so
///   max.poll.interval.ms is never exceeded however long a request takes.
/// - Requests run on a bounded Dispatch-backed executor: at most `maxInFlight` at once, each with
///   its own `InferenceSession`; a small FIFO holds the ones waiting. At the high-water mark the
///   worker pauses its partitions and resumes them below the low-water mark.
/// - A request's offset is stored only after its result (or its error result and dead-letter
///   record) has been acknowledged by the broker, and only in order per partition
///   (`OffsetTracker`); stored offsets are committed by the auto-commit timer and at shutdown.
/// - On revocation, queued work of the revoked partitions is dropped and running work finishes
///   without storing its offset (the new owner processes it again).
/// - `requestStop()` (SIGTERM/SIGINT) stops fetching, drains in-flight work up to the deadline,
///   commits, leaves the group and flushes the producer.
public final class SegmentationWorker: @unchecked Sendable {
    // @unchecked: every mutable field is inside `state` (a Mutex) or atomic; the Kafka clients
    // and the processor are thread-safe.
    public struct Counters: Sendable, Equatable {
        public var processed = 0
        public var failed = 0
        public var deadLettered = 0
        public var dropped = 0
        public var inFlight = 0
        public var pausedPartitions = 0
    }

    /// An inference session handed to exactly one executor thread: it is taken from the pool
    /// under the state lock and returned the same way, so no two threads ever use it at once.
    struct SessionLease: @unchecked Sendable {
        let session: InferenceSession
    }

    struct Job {
        let message: KafkaMessage
        let received: ContinuousClock.Instant
    }

    struct State {
        var tracker = OffsetTracker()
        var queue: [Job] = []
        var running = 0
        var paused = false
        var assigned: Set<TopicPartition> = []
        var counters = Counters()
        var sessions: [SessionLease] = []
        var fatal: String?
    }

    public let configuration: WorkerConfiguration
    public let processor: RequestProcessor
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let state = Mutex(State())
    let stop = Atomic<Bool>(false)
    let log: @Sendable (String) -> Void
    let highWater: Int
    let lowWater: Int

    public init(configuration: WorkerConfiguration, processor: RequestProcessor, consumerConfiguration: KafkaConfiguration,
                producerConfiguration: KafkaConfiguration, log: @escaping @Sendable (String) -> Void) throws {
        self.configuration = configuration
        self.processor = processor
        self.consumer = try KafkaConsumer(configuration: consumerConfiguration)
        self.producer = try KafkaProducer(configuration: producerConfiguration)
        self.log = log
        self.lowWater = configuration.maxInFlight
        self.highWater = configuration.maxInFlight + max(2, configuration.maxInFlight)
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Asks the poll loop to stop and drain (safe from any thread, e.g. a signal handler).
    public func requestStop() { stop.store(true, ordering: .relaxed) }

    /// Subscribes and runs the poll loop until `requestStop()`; then drains and closes.
    public func run() throws {
        try consumer.subscribe(topics: [configuration.requestsTopic])
        log("subscribed to \(configuration.requestsTopic) as group \(configuration.group)")
        while !stop.load(ordering: .relaxed) {
            if let fatal = state.withLock({ $0.fatal }) { throw ServiceError(.internal, fatal) }
            if let message = consumer.poll(timeout: .milliseconds(100)) { accept(message) }
            handleRebalance()
            applyBackPressure()
        }
        try shutdown()
    }

    // MARK: - Poll loop

    private func accept(_ message: KafkaMessage) {
        if let error = message.error {
            if error.code != .partitionEOF { log("consumer error: \(error)") }
            return
        }
        let key = OffsetTracker.Key(topic: message.topic, partition: message.partition)
        state.withLock { s in
            s.tracker.started(key, offset: message.offset)
            s.queue.append(Job(message: message, received: .now))
            s.counters.inFlight = s.tracker.inFlight
        }
        startQueued()
    }

    private func handleRebalance() {
        for event in consumer.drainRebalanceEvents() {
            switch event {
            case .assigned(let partitions):
                state.withLock { $0.assigned.formUnion(partitions) }
                log("assigned \(partitions.map(\.description).joined(separator: ", "))")
            case .revoked(let partitions), .lost(let partitions):
                let keys = partitions.map { OffsetTracker.Key(topic: $0.topic, partition: $0.partition) }
                let dropped = state.withLock { s -> Int in
                    s.assigned.subtract(partitions)
                    s.tracker.revoked(keys)
                    let before = s.queue.count
                    s.queue.removeAll { job in partitions.contains(job.message.topicPartition) }
                    s.counters.dropped += before - s.queue.count
                    s.counters.inFlight = s.tracker.inFlight
                    return before - s.queue.count
                }
                log("revoked \(partitions.map(\.description).joined(separator: ", ")) (\(dropped) queued requests left to the new owner)")
            case .failed(let error):
                log("rebalance error: \(error)")
            }
        }
    }

    private func applyBackPressure() {
        let (load, paused, assigned) = state.withLock { s in (s.queue.count + s.running, s.paused, Array(s.assigned)) }
        if !paused && load >= highWater && !assigned.isEmpty {
            do {
                try consumer.pause(assigned)
                state.withLock { $0.paused = true; $0.counters.pausedPartitions = assigned.count }
            } catch { log("pause failed: \(error)") }
        } else if paused && load <= lowWater {
            do {
                try consumer.resume(assigned)
                state.withLock { $0.paused = false; $0.counters.pausedPartitions = 0 }
            } catch { log("resume failed: \(error)") }
        }
    }

    // MARK: - Executor

    private func startQueued() {
        while true {
            let next: (Job, SessionLease)? = state.withLock { s in
                guard s.running < configuration.maxInFlight, !s.queue.isEmpty else { return nil }
                s.running += 1
                let job = s.queue.removeFirst()
                let lease = s.sessions.popLast() ?? SessionLease(session: InferenceSession(model: processor.weights.model))
                return (job, lease)
            }
            guard let (job, lease) = next else { return }
            DispatchQueue.global(qos: .userInitiated).async { [self] in
                execute(job, session: lease.session)
            }
        }
    }

    private func execute(_ job: Job, session: InferenceSession) {
        let m = job.message
        let queued = ContinuousClock.now - job.received
        let queuedMs = queued.milliseconds
        let source = SegmentationResult.Source(topic: m.topic, partition: m.partition, offset: m.offset)
        let outcome = processor.process(value: m.value, source: source, queuedMs: queuedMs, session: session)
        state.withLock { s in
            s.sessions.append(SessionLease(session: session))
            s.running -= 1
        }
        startQueued()
        publish(outcome, for: m)
    }

    /// Produces the records of an outcome; stores the offset once all are acknowledged.
    private func publish(_ outcome: RequestProcessor.Outcome, for m: KafkaMessage) {
        var records: [(topic: String, key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8])])] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var failedCode: ServiceError.Code?
        switch outcome {
        case .ok(let id, let result):
            if let json = try? encoder.encode(result) {
                records.append((configuration.resultsTopic, Array(id.utf8), [UInt8](json), m.headers))
            }
            log("request \(id) ok (\(m.topic)[\(m.partition)]@\(m.offset), \(Int(result.timingsMs?.total ?? 0)) ms)")
        case .failed(let id, let result, let error):
            failedCode = error.code
            if let id, let result, let json = try? encoder.encode(result) {
                records.append((configuration.resultsTopic, Array(id.utf8), [UInt8](json), m.headers))
            }
            let extra: [(String, [UInt8])] = [
                ("universeg.error.code", Array(error.code.rawValue.utf8)),
                ("universeg.error.reason", Array(error.reason.utf8)),
                ("universeg.source.topic", Array(m.topic.utf8)),
                ("universeg.source.partition", Array(String(m.partition).utf8)),
                ("universeg.source.offset", Array(String(m.offset).utf8)),
            ]
            records.append((configuration.dlqTopic, m.key, m.value, m.headers + extra))
            log("request \(id ?? "-") failed: \(error.code) (\(m.topic)[\(m.partition)]@\(m.offset))")
        }
        let remaining = Atomic<Int>(records.count)
        let deliveryFailed = Atomic<Bool>(false)
        let key = OffsetTracker.Key(topic: m.topic, partition: m.partition)
        let isFailure = failedCode != nil
        let finish: @Sendable () -> Void = { [self] in
            guard !deliveryFailed.load(ordering: .relaxed) else { return }
            let store = state.withLock { s -> Int64? in
                if isFailure {
                    s.counters.failed += 1
                    s.counters.deadLettered += 1
                } else {
                    s.counters.processed += 1
                }
                let offset = s.tracker.finished(key, offset: m.offset)
                s.counters.inFlight = s.tracker.inFlight
                return offset
            }
            if let offset = store {
                do { try consumer.storeOffset(topic: m.topic, partition: m.partition, offset: offset) } catch {
                    log("offset \(offset) of \(m.topic)[\(m.partition)] not stored: \(error)")
                }
            }
        }
        for r in records {
            sendWithRetry(topic: r.topic, key: r.key, value: r.value, headers: r.headers, attempts: 5) { ok in
                if !ok { deliveryFailed.store(true, ordering: .relaxed) }
                if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    if deliveryFailed.load(ordering: .relaxed) {
                        // Nothing is stored: the request is redelivered after a restart.
                        self.state.withLock { $0.fatal = "records for \(m.topic)[\(m.partition)]@\(m.offset) could not be delivered" }
                    } else {
                        finish()
                    }
                }
            }
        }
    }

    private func sendWithRetry(topic: String, key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8])], attempts: Int,
                               done: @escaping @Sendable (Bool) -> Void) {
        do {
            try producer.send(topic: topic, key: key, value: value, headers: headers) { [self] result in
                switch result {
                case .success: done(true)
                case .failure(let error):
                    log("delivery to \(topic) failed: \(error)")
                    if attempts > 1 {
                        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) {
                            self.sendWithRetry(topic: topic, key: key, value: value, headers: headers, attempts: attempts - 1, done: done)
                        }
                    } else {
                        done(false)
                    }
                }
            }
        } catch {
            log("enqueue to \(topic) failed: \(error)")
            if attempts > 1 {
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
                    self.sendWithRetry(topic: topic, key: key, value: value, headers: headers, attempts: attempts - 1, done: done)
                }
            } else {
                done(false)
            }
        }
    }

    // MARK: - Shutdown

    private func shutdown() throws {
        let assigned = state.withLock { Array($0.assigned) }
        if !assigned.isEmpty { try? consumer.pause(assigned) }
        let deadline = ContinuousClock.now + .milliseconds(Int(configuration.drainTimeoutSeconds * 1000))
        log("stopping: draining \(state.withLock { $0.tracker.inFlight }) in-flight requests")
        while state.withLock({ $0.tracker.inFlight }) > 0 && ContinuousClock.now < deadline {
            // Keep serving callbacks (rebalance) while waiting; partitions are paused.
            if let message = consumer.poll(timeout: .milliseconds(50)), message.error == nil {
                // A record fetched before the pause took effect: leave it for the next owner.
                log("leaving \(message.topic)[\(message.partition)]@\(message.offset) unprocessed")
            }
            handleRebalance()
        }
        let left = state.withLock { $0.tracker.inFlight }
        if left > 0 { log("drain deadline reached with \(left) requests unfinished (they will be redelivered)") }
        do { try consumer.commitSync() } catch { log("final commit failed: \(error)") }
        try consumer.close()
        try producer.flush(timeout: .seconds(10))
        try producer.close()
        let c = counters
        log("stopped: \(c.processed) processed, \(c.failed) failed")
    }
}
