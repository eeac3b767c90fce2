internal import CRdKafka
internal import Synchronization

/// Where the broker stored an acknowledged record.
public struct KafkaDeliveryReport: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// An idempotent Kafka producer whose sends complete when the broker acknowledges the record.
///
/// `enable.idempotence=true` is forced (which implies `acks=all`): librdkafka retries without
/// duplicating or reordering records per partition, and an unrecoverable sequence error makes
/// the producer fatal (`error.isFatal`; recreate it). A dedicated thread serves delivery reports
/// (`rd_kafka_poll`), so completions are not delayed by any timer.
///
/// Thread-safe: all methods may be called from any thread or task. Call ``close(timeout:)`` before
/// dropping the last reference; `deinit` otherwise purges unsent records and fails their sends.
public final class KafkaProducer: Sendable {
    /// A send's outcome, delivered once.
    public typealias Completion = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

    private let handle: RDKafkaHandle
    private let context: ClientContext
    private let pollThread: PollThread
    private let accepting = Atomic<Bool>(true)
    private let shutDown = Atomic<Bool>(false)

    /// The configuration the client was created with (after defaults were added).
    public let configuration: KafkaConfiguration

    /// Creates the producer and starts its poll thread.
    ///
    /// - Parameter logHandler: receives librdkafka's log lines instead of stderr (called on
    ///   librdkafka's threads; must be quick and thread-safe).
    /// - Throws: ``KafkaError`` (`_INVALID_ARG`) for `enable.idempotence=false` or any property
    ///   librdkafka rejects.
    public init(
        configuration: KafkaConfiguration, logHandler: (@Sendable (KafkaLogRecord) -> Void)? = nil
    ) throws {
        var configuration = configuration
        if let idempotence = configuration["enable.idempotence"], idempotence != "true" {
            throw KafkaError(.invalidArgument, "configuration property \"enable.idempotence\" must be true",
                             isRetriable: false, key: "enable.idempotence")
        }
        configuration["enable.idempotence"] = "true"
        let context = ClientContext(logHandler: logHandler)
        let pointer = try RDKafkaConfig.makeHandle(RD_KAFKA_PRODUCER, properties: configuration.properties) {
            context.install(on: $0, deliveryReports: true, errors: true)
        }
        self.handle = RDKafkaHandle(pointer: pointer)
        self.context = context
        self.configuration = configuration
        self.pollThread = PollThread(handle: handle, name: "rdkafka-producer-poll")
        pollThread.start()
    }

    deinit {
        shutdown(flushTimeout: .zero)
        // The poll thread has stopped; destroying the handle joins librdkafka's threads, after
        // which no callback can touch the context.
        withExtendedLifetime(context) {
            rd_kafka_destroy(handle.pointer)
        }
    }

    /// Sends a record and returns once the broker has acknowledged it (all in-sync replicas).
    ///
    /// - Parameters:
    ///   - key: nil for no key. Records with the same key go to the same partition.
    ///   - value: nil for a tombstone (null value).
    ///   - headers: sent in order; names may repeat.
    ///   - partition: nil to let the partitioner choose.
    /// - Throws: ``KafkaError`` from the delivery report (e.g. `_MSG_TIMED_OUT` after
    ///   `message.timeout.ms`), or from enqueueing (e.g. `_STATE` after close). When librdkafka's
    ///   local queue is full (`_QUEUE_FULL`) the call waits and retries until there is room, the
    ///   producer is closed (`_STATE`) or the task is cancelled (`CancellationError`). Cancellation
    ///   does not abort a record already enqueued: the call still waits for its acknowledgement
    ///   (bounded by `message.timeout.ms`).
    @discardableResult
    public func send(
        topic: String, key: [UInt8]? = nil, value: [UInt8]?, headers: [(String, [UInt8])] = [],
        partition: Int32? = nil
    ) async throws -> KafkaDeliveryReport {
        var backoff: Duration = .milliseconds(2)
        while true {
            do {
                return try await withCheckedThrowingContinuation { continuation in
                    do {
                        try send(topic: topic, key: key, value: value, headers: headers, partition: partition) {
                            continuation.resume(with: $0)
                        }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            } catch let error as KafkaError where error.code == .queueFull {
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(100))
            }
        }
    }

    /// Enqueues a record; `completion` runs exactly once with the broker's acknowledgement or the
    /// delivery error, on the producer's poll thread (or on a thread inside ``flush(timeout:)`` /
    /// ``close(timeout:)``, which serve the same queue). It must return quickly and not block.
    ///
    /// - Throws: ``KafkaError`` when the record cannot be enqueued (`_QUEUE_FULL` (retriable),
    ///   `_STATE` after close, `MSG_SIZE_TOO_LARGE`, a fatal error, ...); `completion` is then
    ///   not called.
    public func send(
        topic: String, key: [UInt8]? = nil, value: [UInt8]?, headers: [(String, [UInt8])] = [],
        partition: Int32? = nil, completion: @escaping Completion
    ) throws {
        guard accepting.load(ordering: .acquiring), let id = context.registerDelivery(completion) else {
            throw KafkaError(.state, "send to \(topic): the producer is closed", isRetriable: false)
        }
        if let error = enqueue(topic: topic, key: key, value: value, headers: headers,
                               partition: partition ?? RD_KAFKA_PARTITION_UA, id: id) {
            _ = context.takeDelivery(id)
            throw error
        }
    }

    /// Waits up to `timeout` until every enqueued record has been acknowledged or has failed
    /// (their completions have run). Blocks the calling thread.
    ///
    /// - Throws: ``KafkaError`` `_TIMED_OUT` when records are still outstanding.
    public func flush(timeout: Duration) throws {
        let err = rd_kafka_flush(handle.pointer, milliseconds(timeout))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(err, "flush: \(rd_kafka_outq_len(handle.pointer)) records outstanding")
        }
    }

    /// Records (and delivery reports) not yet completed.
    public var outstandingCount: Int { Int(rd_kafka_outq_len(handle.pointer)) }

    /// Returns and forgets the client-level errors librdkafka reported since the last call
    /// (`_ALL_BROKERS_DOWN`, `_TRANSPORT`, a fatal error, ...), oldest first.
    public func drainErrors() -> [KafkaError] {
        context.drainErrors()
    }

    /// The latest statistics document, when `statistics.interval.ms` is set.
    public func statistics() -> KafkaStatistics? {
        context.latestStatisticsJSON.map(KafkaStatistics.init(json:))
    }

    /// The producer's fatal error, if librdkafka raised one (the producer is then unusable).
    public var fatalKafkaError: KafkaError? { KafkaError.fatalError(of: handle.pointer) }

    /// Stops accepting sends, flushes for up to `timeout`, then purges what is left (those sends
    /// fail with `_PURGE_QUEUE`/`_PURGE_INFLIGHT`, not knowing whether the broker got them) and
    /// stops the poll thread. Blocks the calling thread. Later calls do nothing.
    ///
    /// - Throws: ``KafkaError`` `_TIMED_OUT` when records had to be purged.
    public func close(timeout: Duration = .seconds(10)) throws {
        if let error = shutdown(flushTimeout: timeout) { throw error }
    }

    /// Flush, purge, stop the poll thread, fail leftovers. Returns the flush error, if any.
    @discardableResult
    private func shutdown(flushTimeout: Duration) -> KafkaError? {
        accepting.store(false, ordering: .releasing)
        guard !shutDown.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        var flushError: KafkaError?
        let err = rd_kafka_flush(handle.pointer, milliseconds(flushTimeout))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let outstanding = rd_kafka_outq_len(handle.pointer)
            flushError = KafkaError.rdKafka(err, "close: \(outstanding) records not acknowledged in time, purged")
            _ = rd_kafka_purge(handle.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            // Serve the purge delivery reports so their sends complete with a purge error.
            _ = rd_kafka_flush(handle.pointer, 500)
        }
        pollThread.stop()
        context.failAllDeliveries(with: KafkaError(.destroyed, "the producer was closed before delivery was confirmed"))
        return flushError
    }

    private func enqueue(
        topic: String, key: [UInt8]?, value: [UInt8]?, headers: [(String, [UInt8])], partition: Int32, id: UInt
    ) -> KafkaError? {
        // rd_kafka_produceva copies topic, key, value (RD_KAFKA_MSG_F_COPY) and header values
        // before returning, so the Swift buffers only need to live for the call.
        var headerList: OpaquePointer?
        if !headers.isEmpty {
            guard let list = rd_kafka_headers_new(headers.count) else {
                return KafkaError(.invalidArgument, "rd_kafka_headers_new failed")
            }
            for (name, bytes) in headers {
                let err = bytes.withUnsafeBytes { rd_kafka_header_add(list, name, -1, $0.baseAddress, $0.count) }
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    rd_kafka_headers_destroy(list)
                    return KafkaError.rdKafka(err, "add header \(name)")
                }
            }
            headerList = list
        }
        let result: OpaquePointer? = topic.withCString { topicName in
            withOptionalBytes(key) { keyBytes in
                withOptionalBytes(value) { valueBytes in
                    var fields = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 7)
                    fields[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    fields[0].u.cstr = topicName
                    fields[1].vtype = RD_KAFKA_VTYPE_PARTITION
                    fields[1].u.i32 = partition
                    fields[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    fields[2].u.i = RD_KAFKA_MSG_F_COPY
                    fields[3].vtype = RD_KAFKA_VTYPE_OPAQUE
                    fields[3].u.ptr = UnsafeMutableRawPointer(bitPattern: id)
                    fields[4].vtype = RD_KAFKA_VTYPE_VALUE
                    fields[4].u.mem.ptr = valueBytes?.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                    fields[4].u.mem.size = valueBytes?.count ?? 0
                    var count = 5
                    if let keyBytes {
                        fields[count].vtype = RD_KAFKA_VTYPE_KEY
                        fields[count].u.mem.ptr = UnsafeMutableRawPointer(mutating: keyBytes.baseAddress)
                        fields[count].u.mem.size = keyBytes.count
                        count += 1
                    }
                    if let headerList {
                        fields[count].vtype = RD_KAFKA_VTYPE_HEADERS
                        fields[count].u.headers = headerList
                        count += 1
                    }
                    return rd_kafka_produceva(handle.pointer, fields, count)
                }
            }
        }
        guard let result else { return nil } // success: librdkafka owns the header list now
        if let headerList { rd_kafka_headers_destroy(headerList) }
        return KafkaError.consuming(result, "send to \(topic)")
    }
}

/// Calls `body` with the bytes of `array`, or nil for a nil array. An empty, non-nil array gets a
/// non-nil buffer (so it is sent as an empty value, not a null one).
private func withOptionalBytes<R>(_ array: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let array else { return body(nil) }
    if array.isEmpty {
        return withUnsafeTemporaryAllocation(byteCount: 1, alignment: 1) { body(UnsafeRawBufferPointer(start: $0.baseAddress, count: 0)) }
    }
    return array.withUnsafeBytes { body($0) }
}
