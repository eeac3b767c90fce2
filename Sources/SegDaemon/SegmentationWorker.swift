internal import Foundation
public import SegKafka
internal import SegModel
internal import SegTiming
internal import SegIO
public import SegService
public import Logging
internal import SegOperations
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
/// - A transient failure (a store or PACS down, a timeout, HTTP 5xx) is neither a result nor a dead
///   letter: the request goes back to the head of the queue, the partitions pause, and it is tried
///   again after a capped exponential backoff (`DependencyGate`, `RetryPolicy`) for as long as the
///   outage lasts; polling and watchdog pings go on. `universeg_dependency_up` and one log line per
///   change say what is down.
/// - `requestStop()` (SIGTERM/SIGINT) stops fetching, drains in-flight work up to the deadline,
///   commits, leaves the group and flushes the producer.
/// - `.replay` mode reads fixed offset ranges (its own group, manual assignment), marks results
///   `"replay": true`, and returns from `run()` when every range is done.
/// - `health()` tells the watchdog whether the poll loop and the executor make progress.
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

    typealias Job = RequestQueue<KafkaMessage>.Job

    /// How the worker gets its partitions.
    public enum Mode: Sendable {
        /// Subscribe to the requests topic as a member of the consumer group.
        case group
        /// Read fixed ranges (manual assignment) and stop when done.
        case replay(ReplayPlan)
    }

    /// What a replay reads: each partition from its start offset to the end it had when the
    /// replay started, restricted to records whose timestamp lies in `from...to`.
    ///
    /// The end is where the partition's records stop being older than `to` (the replay's start
    /// time when no --to was given), or the end of the partition (`enable.partition.eof`),
    /// whichever comes first: records produced after the replay started are not replayed. (The
    /// high watermark is not used as the end: Tansu 0.6 under-reports it after batched produces.)
    public struct ReplayPlan: Sendable, Equatable {
        public var startOffsets: [TopicPartition: Int64]
        public var fromMilliseconds: Int64
        public var toMilliseconds: Int64
        /// Records expected (from the watermarks at start), for reporting only.
        public var expectedRecords: Int64
        public init(startOffsets: [TopicPartition: Int64], fromMilliseconds: Int64, toMilliseconds: Int64, expectedRecords: Int64) {
            self.startOffsets = startOffsets
            self.fromMilliseconds = fromMilliseconds
            self.toMilliseconds = toMilliseconds
            self.expectedRecords = expectedRecords
        }
    }

    /// What the replay did.
    public struct ReplaySummary: Sendable, Equatable {
        public var replayed = 0
        public var skippedOutsideTimeRange = 0
    }

    /// Whether the worker makes progress (for the systemd watchdog and /healthz).
    public struct Health: Sendable, Equatable {
        /// Time since the poll loop last went round.
        public var sinceLastPoll: Duration
        /// Work is waiting or running and nothing started or finished for longer than the stall timeout.
        public var executorStalled: Bool
        public var pollStalled: Bool
        public var isHealthy: Bool { !executorStalled && !pollStalled }
    }

    struct State {
        /// Requests taken and not finished, their offsets, slots and outages.
        var queue: RequestQueue<KafkaMessage>
        var paused = false
        var assigned: Set<TopicPartition> = []
        var counters = Counters()
        var sessions: [SessionLease] = []
        var fatal: String?
        var lastPoll = ContinuousClock.now
        var lastProgress = ContinuousClock.now
        var lag: [TopicPartition: Int64] = [:]
        /// Replay: partitions still being read.
        var replayOpen: Set<TopicPartition> = []
        var replay = ReplaySummary()
        /// Every broker is unreachable (librdkafka's _ALL_BROKERS_DOWN), until a broker is up again.
        var brokersDown = false
    }

    public let configuration: WorkerConfiguration
    public let processor: RequestProcessor
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let state: Mutex<State>
    let stop = Atomic<Bool>(false)
    let logger: Logger
    public let metrics: WorkerMetrics
    public let mode: Mode
    let backPressure: BackPressure
    let delivery = DeliveryPolicy()
    /// The poll loop goes round at least every 100 ms; this long without a round is a stall.
    static let pollStallLimit: Duration = .seconds(15)

    public init(configuration: WorkerConfiguration, processor: RequestProcessor, consumerConfiguration: KafkaConfiguration,
                producerConfiguration: KafkaConfiguration, logger: Logger, metrics: WorkerMetrics? = nil,
                mode: Mode = .group, retryPolicy: RetryPolicy = RetryPolicy()) throws {
        self.state = Mutex(State(queue: RequestQueue(maxRunning: configuration.maxInFlight, retryPolicy: retryPolicy)))
        self.configuration = configuration
        self.processor = processor
        var consumerConfiguration = consumerConfiguration
        if consumerConfiguration["statistics.interval.ms"] == nil { consumerConfiguration["statistics.interval.ms"] = "5000" }
        if case .replay = mode { consumerConfiguration["enable.partition.eof"] = "true" }
        self.consumer = try KafkaConsumer(configuration: consumerConfiguration, logHandler: Self.librdkafkaLog(logger, client: "consumer"))
        self.producer = try KafkaProducer(configuration: producerConfiguration, logHandler: Self.librdkafkaLog(logger, client: "producer"))
        self.logger = logger
        self.metrics = metrics ?? WorkerMetrics(modelName: processor.weights.name, modelSHA256: processor.weights.sha256)
        self.mode = mode
        // Pause with max_queued requests waiting behind the running ones; resume at half.
        self.backPressure = BackPressure(maxInFlight: configuration.maxInFlight, maxQueued: configuration.maxQueued)
        for dependency in processor.dependencies { self.metrics.declareDependency(dependency) }
        self.metrics.registry.addCollector { [weak self] in self?.refreshMetrics() }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    public var replaySummary: ReplaySummary { state.withLock { $0.replay } }

    /// Asks the poll loop to stop and drain (safe from any thread, e.g. a signal handler).
    public func requestStop() { stop.store(true, ordering: .relaxed) }

    public var isStopping: Bool { stop.load(ordering: .relaxed) }

    /// Whether the poll loop and the executor make progress.
    public func health(now: ContinuousClock.Instant = .now) -> Health {
        state.withLock { s in
            let sincePoll = now - s.lastPoll
            let pending = s.queue.load > 0
            // Waiting for a dependency to come back is not a stall: the process is healthy.
            let stalled = pending && !s.queue.isWaitingOnDependency && now - s.lastProgress > .milliseconds(Int(configuration.stallTimeoutSeconds * 1000))
            return Health(sinceLastPoll: sincePoll, executorStalled: stalled, pollStalled: sincePoll > Self.pollStallLimit)
        }
    }

    /// Whether at least one Kafka broker is reachable (false after librdkafka reported all brokers
    /// down, until one is up again); `/readyz` and STATUS= say so.
    public var kafkaReachable: Bool { state.withLock { !$0.brokersDown } }

    /// librdkafka's own log lines through the worker's logger (journald priorities and fields)
    /// instead of raw `%3|...|FAIL|...` lines on stderr: syslog severities 0-2 critical, 3 error,
    /// 4 warning, 5 notice, 6 info, 7 debug.
    static func librdkafkaLog(_ logger: Logger, client: String) -> @Sendable (KafkaLogRecord) -> Void {
        { record in
            let level: Logger.Level = switch record.level {
            case ...2: .critical
            case 3: .error
            case 4: .warning
            case 5: .notice
            case 6: .info
            default: .debug
            }
            logger.log(level: level, "librdkafka: \(record.message)", metadata: ["kafka_client": "\(client)", "kafka_facility": "\(record.facility)"])
        }
    }

    /// One line for systemd's STATUS=.
    public var statusLine: String {
        state.withLock { s in
            let lag = s.lag.values.reduce(0, +)
            let c = s.counters
            return (s.brokersDown ? "Kafka brokers unreachable; " : "") + "in flight \(c.inFlight) (running \(s.queue.running)), processed \(c.processed), failed \(c.failed), lag \(lag), paused partitions \(c.pausedPartitions)"
        }
    }

    /// Joins the group (subscription) or assigns the replay ranges. Call once, before `run()`.
    public func start() throws {
        switch mode {
        case .group:
            try consumer.subscribe(topics: [configuration.requestsTopic])
            logger.info("subscribed", metadata: ["kafka_topic": "\(configuration.requestsTopic)", "group": "\(configuration.group)"])
        case .replay(let plan):
            state.withLock { s in
                s.replayOpen = Set(plan.startOffsets.keys)
                s.assigned = Set(plan.startOffsets.keys)
            }
            try consumer.assign(plan.startOffsets.map { ($0.key, $0.value) })
            logger.info("replaying", metadata: ["partitions": "\(plan.startOffsets.count)", "expected_records": "\(plan.expectedRecords)"])
        }
    }

    /// Runs the poll loop until `requestStop()` (or, replaying, until every range is done);
    /// then drains and closes.
    public func run() throws {
        var nextSnapshot = ContinuousClock.now + .seconds(configuration.metricsIntervalSeconds)
        var nextStatistics = ContinuousClock.now + .seconds(1)
        while !stop.load(ordering: .relaxed) {
            if let fatal = state.withLock({ $0.fatal }) { throw ServiceError(.internal, fatal) }
            if let message = consumer.poll(timeout: .milliseconds(100)) { accept(message) }
            let now = ContinuousClock.now
            state.withLock { $0.lastPoll = now }
            handleRebalance()
            handleClientErrors()
            applyBackPressure()
            startQueued()  // a request held back by an outage starts once its retry time has come
            if now >= nextStatistics {
                nextStatistics = now + .seconds(1)
                if let stats = consumer.statistics() {
                    state.withLock { $0.lag = stats.consumerLag.filter { $0.key.topic == configuration.requestsTopic } }
                    switch stats.brokersReachable {
                    case true?: brokersReachable()
                    case false?: brokersUnreachable("no broker connection is up")
                    case nil: break
                    }
                }
            }
            if now >= nextSnapshot {
                nextSnapshot = now + .seconds(configuration.metricsIntervalSeconds)
                publishSnapshot()
            }
            if case .replay = mode, state.withLock({ $0.replayOpen.isEmpty && $0.queue.inFlight == 0 && $0.queue.load == 0 }) {
                break
            }
        }
        try shutdown()
    }

    // MARK: - Poll loop

    private func accept(_ message: KafkaMessage) {
        if let error = message.error {
            if error.code == .partitionEOF {
                if case .replay = mode { closeReplayRange(message.topicPartition, reason: "end of partition") }
            } else if error.code == .allBrokersDown {
                brokersUnreachable("\(error)")
            } else {
                logger.error("consumer error", metadata: ["error": "\(error)"])
            }
            return
        }
        brokersReachable()
        let key = OffsetTracker.Key(topic: message.topic, partition: message.partition)
        if case .replay(let plan) = mode {
            guard state.withLock({ $0.replayOpen.contains(message.topicPartition) }) else { return }
            switch ReplayFilter(fromMilliseconds: plan.fromMilliseconds, toMilliseconds: plan.toMilliseconds)
                .decide(timestampMilliseconds: message.timestamp?.millisecondsSinceEpoch) {
            case .endOfRange:
                closeReplayRange(message.topicPartition, reason: "records newer than the end of the range")
                return
            case .process:
                break
            case .skip:
                // Outside the time range: nothing to do, but the offset still moves on.
                let offset = state.withLock { s -> Int64? in
                    s.replay.skippedOutsideTimeRange += 1
                    return s.queue.skip(partition: key, offset: message.offset)
                }
                if let offset { try? consumer.storeOffset(topic: message.topic, partition: message.partition, offset: offset) }
                return
            }
        }
        state.withLock { s in
            if s.queue.load == 0 { s.lastProgress = .now }
            s.queue.accept(message, partition: key, offset: message.offset, now: .now)
            s.counters.inFlight = s.queue.inFlight
        }
        startQueued()
    }

    /// Client-level errors of both clients (librdkafka's `error_cb`): all brokers down marks a
    /// broker outage, a fatal error stops the worker with nothing more stored, others are logged.
    private func handleClientErrors() {
        for (client, errors) in [("consumer", consumer.drainErrors()), ("producer", producer.drainErrors())] {
            for error in errors {
                if error.isFatal {
                    logger.critical("fatal Kafka client error", metadata: ["kafka_client": "\(client)", "error": "\(error)"])
                    state.withLock { $0.fatal = "fatal \(client) error: \(error)" }
                } else if error.code == .allBrokersDown {
                    brokersUnreachable("\(error)")
                } else if error.code == .transport {
                    // librdkafka's own FAIL log line (above, through the logger) already says it.
                    logger.debug("Kafka client error", metadata: ["kafka_client": "\(client)", "error": "\(error)"])
                } else {
                    logger.warning("Kafka client error", metadata: ["kafka_client": "\(client)", "error": "\(error)"])
                }
            }
        }
    }

    /// Every broker is unreachable (librdkafka's statistics or _ALL_BROKERS_DOWN): one log line,
    /// then STATUS= and /readyz say so until a broker is back.
    private func brokersUnreachable(_ why: String) {
        let changed = state.withLock { s in
            defer { s.brokersDown = true }
            return !s.brokersDown
        }
        if changed {
            logger.error("all Kafka brokers unreachable: nothing is fetched or delivered until one is back", metadata: ["why": "\(why)"])
        }
    }

    /// A broker answered (a record arrived, or the statistics show one up): ends a broker outage.
    private func brokersReachable() {
        let changed = state.withLock { s in
            defer { s.brokersDown = false }
            return s.brokersDown
        }
        if changed { logger.notice("Kafka brokers reachable again") }
    }

    private func closeReplayRange(_ partition: TopicPartition, reason: String) {
        let closed = state.withLock { $0.replayOpen.remove(partition) != nil }
        if closed { logger.info("replay range done", metadata: ["kafka_topic": "\(partition.topic)", "kafka_partition": "\(partition.partition)", "why": "\(reason)"]) }
    }

    private func handleRebalance() {
        for event in consumer.drainRebalanceEvents() {
            switch event {
            case .assigned(let partitions):
                // New partitions arrive unpaused; while the worker is paused they are paused too,
                // so that back-pressure holds and a later resume covers them.
                let paused = state.withLock { s -> Bool in
                    s.assigned.formUnion(partitions)
                    return s.paused
                }
                metrics.rebalance("assigned", partitions: partitions.count)
                logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
                if paused && !partitions.isEmpty {
                    do {
                        try consumer.pause(partitions)
                        state.withLock { $0.counters.pausedPartitions = $0.assigned.count }
                    } catch { logger.error("pause failed", metadata: ["error": "\(error)"]) }
                }
            case .revoked(let partitions), .lost(let partitions):
                let keys = Set(partitions.map { OffsetTracker.Key(topic: $0.topic, partition: $0.partition) })
                let dropped = state.withLock { s -> Int in
                    s.assigned.subtract(partitions)
                    if s.paused { s.counters.pausedPartitions = s.assigned.count }
                    let dropped = s.queue.revoke(keys)
                    s.counters.dropped += dropped
                    s.counters.inFlight = s.queue.inFlight
                    return dropped
                }
                metrics.rebalance("revoked", partitions: partitions.count)
                logger.notice("partitions revoked", metadata: [
                    "partitions": "\(partitions.map(\.description).joined(separator: ","))", "dropped_queued": "\(dropped)"])
            case .failed(let error):
                logger.error("rebalance error", metadata: ["error": "\(error)"])
            }
        }
    }

    private func applyBackPressure() {
        let (load, paused, assigned, waiting) = state.withLock { s in
            (s.queue.load, s.paused, Array(s.assigned), s.queue.isWaitingOnDependency)
        }
        switch backPressure.decide(load: load, paused: paused, waitingOnDependency: waiting, hasPartitions: !assigned.isEmpty) {
        case .pause:
            do {
                try consumer.pause(assigned)
                state.withLock { $0.paused = true; $0.counters.pausedPartitions = assigned.count }
                logger.notice(waiting ? "partitions paused (waiting for a dependency)" : "partitions paused (back-pressure)",
                              metadata: ["load": "\(load)", "partitions": "\(assigned.count)"])
            } catch { logger.error("pause failed", metadata: ["error": "\(error)"]) }
        case .resume:
            do {
                try consumer.resume(assigned)
                state.withLock { $0.paused = false; $0.counters.pausedPartitions = 0 }
                logger.notice("partitions resumed", metadata: ["load": "\(load)"])
            } catch { logger.error("resume failed", metadata: ["error": "\(error)"]) }
        case .none:
            break
        }
    }

    // MARK: - Executor

    private func startQueued() {
        while true {
            let next: (Job, SessionLease?)? = state.withLock { s in
                guard let job = s.queue.next(now: .now) else { return nil }
                s.lastProgress = .now
                return (job, s.sessions.popLast())
            }
            guard let (job, lease) = next else { return }
            // A thread of its own, not a Dispatch queue: a request blocks for seconds (inference,
            // HTTP to the store or a PACS), which would hold one of Dispatch's few worker threads
            // that the rest of the process (timers, the metrics endpoint) relies on.
            let thread = Thread { [self] in
                // A new session plans its memory (hundreds of MB): made here, outside the lock
                // that the poll loop needs.
                execute(job, session: lease?.session ?? InferenceSession(model: processor.weights.model))
            }
            thread.name = "universeg-request"
            thread.start()
        }
    }

    private func execute(_ job: Job, session: InferenceSession) {
        let m = job.payload
        let queuedMs = (ContinuousClock.now - job.received).milliseconds
        let source = SegmentationResult.Source(topic: m.topic, partition: m.partition, offset: m.offset)
        var outcome = processor.process(value: m.value, source: source, queuedMs: queuedMs, session: session)
        if case .replay = mode { outcome = outcome.markedAsReplay() }
        var transient: (dependency: String, reason: String)?
        if case .unavailable(_, let error) = outcome { transient = (error.dependency ?? "unknown", error.reason) }
        let now = ContinuousClock.now
        let stopping = isStopping
        let finish = state.withLock { s -> RequestQueue<KafkaMessage>.Finish in
            s.sessions.append(SessionLease(session: session))
            s.lastProgress = now
            let finish = s.queue.finished(job, transient: transient, stopping: stopping, now: now, unit: Double.random(in: 0..<1))
            s.counters.inFlight = s.queue.inFlight
            return finish
        }
        var meta: Logger.Metadata = ["kafka_topic": "\(m.topic)", "kafka_partition": "\(m.partition)", "kafka_offset": "\(m.offset)"]
        switch finish {
        case .retry(let dependency, let wentDown, let failures, let retryIn):
            meta["dependency"] = "\(dependency)"
            meta["retry_in_ms"] = "\(Int(retryIn.milliseconds))"
            if wentDown {
                metrics.dependency(dependency, up: false)
                meta["why"] = "\(transient?.reason ?? "")"
                logger.warning("dependency down: requests wait and are retried", metadata: meta)
            } else {
                meta["failures"] = "\(failures)"
                logger.debug("dependency still down", metadata: meta)
            }
        case .abandon(let dependency):
            meta["dependency"] = "\(dependency)"
            logger.info("not retried (stopping or revoked); left for redelivery", metadata: meta)
        case .publish(let cameBack):
            if let (dependency, downFor) = cameBack {
                metrics.dependency(dependency, up: true)
                meta["dependency"] = "\(dependency)"
                meta["down_ms"] = "\(Int(downFor.milliseconds))"
                logger.notice("dependency back: resuming", metadata: meta)
            }
        }
        startQueued()
        if case .publish = finish { publish(outcome, for: job) }
    }

    /// Produces the records of an outcome (result, dead-letter record, per-request metrics
    /// record); stores the offset once all are acknowledged by the broker.
    private func publish(_ outcome: RequestProcessor.Outcome, for job: Job) {
        let m = job.payload
        let records = OutgoingRecords.make(
            outcome, for: m,
            topics: .init(results: configuration.resultsTopic, deadLetters: configuration.dlqTopic, metrics: configuration.metricsTopic),
            maxRecordBytes: RecordBounds.maxRecordBytes(configuration.kafkaProperties), worker: processor.workerName,
            replay: isReplay, timeMs: Int64(Date().timeIntervalSince1970 * 1000))
        var failedCode: ServiceError.Code?
        var meta: Logger.Metadata = ["kafka_topic": "\(m.topic)", "kafka_partition": "\(m.partition)", "kafka_offset": "\(m.offset)"]
        switch outcome {
        case .ok(let id, let result):
            meta["request_id"] = "\(id)"
            if let set = result.supportSet { meta["support_set"] = "\(set.id)@\(set.version)" }
            meta["duration_ms"] = "\(Int(result.timingsMs?.total ?? 0))"
            logger.info("request ok", metadata: meta)
        case .unavailable:
            return  // nothing to publish: the request is retried
        case .failed(let id, _, let error):
            failedCode = error.code
            if let id { meta["request_id"] = "\(id)" }
            meta["error_code"] = "\(error.code.rawValue)"
            // The reason is not logged: it may quote field names from the request.
            logger.warning("request failed", metadata: meta)
        }
        let remaining = Atomic<Int>(records.count)
        let deliveryFailed = Atomic<Bool>(false)
        let isFailure = failedCode != nil
        let finish: @Sendable () -> Void = { [self] in
            let store = state.withLock { s -> Int64? in
                if isFailure {
                    s.counters.failed += 1
                    s.counters.deadLettered += 1
                } else {
                    s.counters.processed += 1
                }
                if case .replay = mode { s.replay.replayed += 1 }
                let offset = s.queue.delivered(job)
                s.counters.inFlight = s.queue.inFlight
                return offset
            }
            metrics.finished(outcome)
            if let offset = store {
                do { try consumer.storeOffset(topic: m.topic, partition: m.partition, offset: offset) } catch {
                    logger.warning("offset not stored", metadata: [
                        "kafka_topic": "\(m.topic)", "kafka_partition": "\(m.partition)", "kafka_offset": "\(offset)", "error": "\(error)"])
                }
            }
        }
        for r in records {
            sendWithRetry(r) { ok in
                if !ok { deliveryFailed.store(true, ordering: .relaxed) }
                if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    if deliveryFailed.load(ordering: .relaxed) {
                        // Nothing is stored: the request is redelivered after a restart.
                        self.metrics.deliveryFailed()
                        self.state.withLock { $0.fatal = "records for \(m.topic)[\(m.partition)]@\(m.offset) could not be delivered" }
                    } else {
                        finish()
                    }
                }
            }
        }
    }

    var isReplay: Bool {
        if case .replay = mode { return true }
        return false
    }

    /// The periodic snapshot of every metric on the metrics topic (type "snapshot"); best effort.
    private func publishSnapshot() {
        let record: [String: Any] = [
            "schema": "universeg.metrics.v1", "type": "snapshot", "worker": processor.workerName,
            "time_ms": Int64(Date().timeIntervalSince1970 * 1000), "metrics": metrics.registry.snapshot(),
        ]
        guard let json = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        do {
            try producer.send(topic: configuration.metricsTopic, key: Array(processor.workerName.utf8), value: [UInt8](json),
                              headers: []) { [logger] result in
                if case .failure(let error) = result { logger.warning("metrics snapshot not delivered", metadata: ["error": "\(error)"]) }
            }
        } catch {
            logger.warning("metrics snapshot not sent", metadata: ["error": "\(error)"])
        }
    }

    private func refreshMetrics() {
        let (counters, queued, lag) = state.withLock { s in
            (s.counters, s.queue.waiting.count, s.lag.map { ($0.key.topic, $0.key.partition, $0.value) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) })
        }
        metrics.update(counters: counters, queued: queued, lag: lag, cache: processor.cache.statistics,
                       healthy: health().isHealthy, residentBytes: Self.residentBytes())
    }

    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Sends one record, retrying as `DeliveryPolicy` decides; `done(false)` when it could not be
    /// delivered (the caller stops the worker with nothing stored).
    private func sendWithRetry(_ record: OutgoingRecord, attempt: Int = 1, done: @escaping @Sendable (Bool) -> Void) {
        let handle: @Sendable (KafkaError) -> Void = { [self] error in
            switch delivery.decide(error, attempt: attempt) {
            case .fatal:
                logger.critical("fatal producer error", metadata: ["kafka_topic": "\(record.topic)", "error": "\(error)"])
                done(false)
            case .retry(let pause):
                logger.warning("delivery failed; retrying", metadata: ["kafka_topic": "\(record.topic)", "error": "\(error)"])
                DispatchQueue.global().asyncAfter(deadline: .now() + RetryPolicy.seconds(pause)) {
                    self.sendWithRetry(record, attempt: attempt + 1, done: done)
                }
            case .fail:
                logger.error("delivery failed", metadata: ["kafka_topic": "\(record.topic)", "error": "\(error)"])
                done(false)
            }
        }
        do {
            try producer.send(topic: record.topic, key: record.key, value: record.value, headers: record.headers) { result in
                switch result {
                case .success: done(true)
                case .failure(let error): handle(error)
                }
            }
        } catch let error as KafkaError {
            handle(error)
        } catch {
            logger.error("enqueue for delivery failed", metadata: ["kafka_topic": "\(record.topic)", "error": "\(error)"])
            done(false)
        }
    }

    // MARK: - Shutdown

    private func shutdown() throws {
        let assigned = state.withLock { Array($0.assigned) }
        if !assigned.isEmpty { try? consumer.pause(assigned) }
        // Requests waiting for a dependency are not retried while stopping: their partitions keep
        // their committed offsets and the requests are redelivered.
        let leftWaiting = state.withLock { s -> Int in
            let dropped = s.queue.dropWaitingForShutdown()
            s.counters.inFlight = s.queue.inFlight
            return dropped
        }
        if leftWaiting > 0 {
            logger.notice("stopping during a dependency outage: waiting requests left for redelivery", metadata: ["requests": "\(leftWaiting)"])
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(configuration.drainTimeoutSeconds * 1000))
        logger.notice("stopping: draining in-flight requests", metadata: ["in_flight": "\(state.withLock { $0.queue.inFlight })"])
        while state.withLock({ $0.queue.inFlight > 0 || $0.queue.running > 0 }) && ContinuousClock.now < deadline {
            startQueued()
            // Keep serving callbacks (rebalance) while waiting; partitions are paused.
            if let message = consumer.poll(timeout: .milliseconds(50)), message.error == nil {
                // A record fetched before the pause took effect: leave it for the next owner.
                logger.info("left for the next owner", metadata: [
                    "kafka_topic": "\(message.topic)", "kafka_partition": "\(message.partition)", "kafka_offset": "\(message.offset)"])
            }
            handleRebalance()
        }
        let left = state.withLock { $0.queue.inFlight }
        if left > 0 { logger.warning("drain deadline reached; unfinished requests will be redelivered", metadata: ["in_flight": "\(left)"]) }
        do { try consumer.commitSync() } catch { logger.error("final commit failed", metadata: ["error": "\(error)"]) }
        try consumer.close()
        try producer.flush(timeout: .seconds(10))
        try producer.close()
        let c = counters
        logger.notice("stopped", metadata: ["processed": "\(c.processed)", "failed": "\(c.failed)"])
    }
}
