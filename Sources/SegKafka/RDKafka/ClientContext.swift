internal import CRdKafka
internal import Synchronization

/// State shared between one client object and librdkafka's C callbacks for its handle.
///
/// The callbacks receive this object as the conf opaque (`Unmanaged`, unretained). They never
/// touch actors or await: each one takes a `Mutex`, appends to or replaces a buffer, and returns;
/// delivery completions run after the lock is released. The owning client keeps a strong
/// reference and destroys the `rd_kafka_t` (which joins librdkafka's threads, so no callback is
/// running or will run) before it lets go of the context.
final class ClientContext: Sendable {
    typealias DeliveryCompletion = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

    /// Pending delivery reports, keyed by the id passed to librdkafka as the message opaque.
    struct DeliveryRegistry {
        var nextID: UInt = 1
        var pending: [UInt: DeliveryCompletion] = [:]
        /// Set at the end of `KafkaProducer.close()`: no new completions are accepted.
        var closed = false
    }

    /// The most rebalance events kept for `drainRebalanceEvents()`; older ones are dropped.
    static let rebalanceEventLimit = 1024

    let logHandler: (@Sendable (KafkaLogRecord) -> Void)?
    private let rebalanceEvents = Mutex<[KafkaRebalanceEvent]>([])
    private let statisticsJSON = Mutex<String?>(nil)
    /// Client-level errors (`error_cb`: all brokers down, transport, fatal), oldest first.
    private let clientErrors = Mutex<[KafkaError]>([])
    /// The most client errors kept for `drainErrors()`; older ones are dropped.
    static let errorLimit = 256
    let deliveries = Mutex(DeliveryRegistry())

    init(logHandler: (@Sendable (KafkaLogRecord) -> Void)?) {
        self.logHandler = logHandler
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ opaque: UnsafeRawPointer?) -> ClientContext? {
        guard let opaque else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }

    /// Sets the opaque and the callbacks a client needs on `conf`.
    func install(on conf: OpaquePointer, rebalance: Bool = false, deliveryReports: Bool = false, errors: Bool = false) {
        rd_kafka_conf_set_opaque(conf, opaque)
        if errors { rd_kafka_conf_set_error_cb(conf, errorCallback) }
        rd_kafka_conf_set_stats_cb(conf, statisticsCallback)
        if logHandler != nil { rd_kafka_conf_set_log_cb(conf, logCallback) }
        if rebalance { rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback) }
        if deliveryReports { rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback) }
    }

    // MARK: Rebalance events

    func record(_ event: KafkaRebalanceEvent) {
        rebalanceEvents.withLock { events in
            events.append(event)
            if events.count > Self.rebalanceEventLimit { events.removeFirst(events.count - Self.rebalanceEventLimit) }
        }
    }

    func drainRebalanceEvents() -> [KafkaRebalanceEvent] {
        rebalanceEvents.withLock { events in
            defer { events.removeAll() }
            return events
        }
    }

    // MARK: Client errors

    func record(_ error: KafkaError) {
        clientErrors.withLock { errors in
            errors.append(error)
            if errors.count > Self.errorLimit { errors.removeFirst(errors.count - Self.errorLimit) }
        }
    }

    func drainErrors() -> [KafkaError] {
        clientErrors.withLock { errors in
            defer { errors.removeAll() }
            return errors
        }
    }

    // MARK: Statistics

    var latestStatisticsJSON: String? { statisticsJSON.withLock { $0 } }

    func storeStatistics(_ json: String) { statisticsJSON.withLock { $0 = json } }

    // MARK: Deliveries

    /// Registers `completion` and returns its id, or nil once the registry is closed.
    func registerDelivery(_ completion: @escaping DeliveryCompletion) -> UInt? {
        deliveries.withLock { registry in
            guard !registry.closed else { return nil }
            let id = registry.nextID
            registry.nextID &+= 1
            if registry.nextID == 0 { registry.nextID = 1 }
            registry.pending[id] = completion
            return id
        }
    }

    /// Removes and returns the completion for `id` (nil when already completed or unknown).
    func takeDelivery(_ id: UInt) -> DeliveryCompletion? {
        deliveries.withLock { $0.pending.removeValue(forKey: id) }
    }

    /// Closes the registry and fails every pending completion with `error`.
    func failAllDeliveries(with error: KafkaError) {
        let pending = deliveries.withLock { registry in
            registry.closed = true
            defer { registry.pending.removeAll() }
            return Array(registry.pending.values)
        }
        for completion in pending { completion(.failure(error)) }
    }

    var pendingDeliveryCount: Int { deliveries.withLock { $0.pending.count } }
}

// MARK: - C callbacks (no captures; context recovered from the opaque)

/// `rebalance_cb`: performs the (incremental, for COOPERATIVE) assign or unassign synchronously,
/// as librdkafka requires, and records an event for `KafkaConsumer.drainRebalanceEvents()`.
///
/// Newly assigned partitions are resumed: librdkafka keeps a partition's application pause
/// through a revocation, so a partition paused when it was revoked and later assigned to this
/// consumer again would otherwise stay paused with nothing fetching it.
private func rebalanceCallback(
    _ handle: OpaquePointer?, _ err: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let handle, let context = ClientContext.from(opaque) else { return }
    let topicPartitions = partitions.map { RDKafkaTopicPartitionList.entries($0).map(\.topicPartition) } ?? []
    let cooperative = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) } == "COOPERATIVE"
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        if cooperative {
            if let error = rd_kafka_incremental_assign(handle, partitions) {
                context.record(.failed(.consuming(error, "incremental assign")))
                return
            }
        } else {
            let result = rd_kafka_assign(handle, partitions)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                context.record(.failed(.rdKafka(result, "assign")))
                return
            }
        }
        if let partitions, partitions.pointee.cnt > 0 {
            let result = rd_kafka_resume_partitions(handle, partitions)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                context.record(.failed(.rdKafka(result, "resume assigned partitions")))
            }
        }
        context.record(.assigned(topicPartitions))
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        let lost = rd_kafka_assignment_lost(handle) != 0
        if cooperative {
            if let error = rd_kafka_incremental_unassign(handle, partitions) {
                context.record(.failed(.consuming(error, "incremental unassign")))
            }
        } else {
            let result = rd_kafka_assign(handle, nil)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR { context.record(.failed(.rdKafka(result, "unassign"))) }
        }
        context.record(lost ? .lost(topicPartitions) : .revoked(topicPartitions))
    default:
        _ = rd_kafka_assign(handle, nil)
        context.record(.failed(.rdKafka(err, "rebalance")))
    }
}

/// `stats_cb`: keeps the latest JSON document. Returns 0 so that librdkafka frees `json`.
private func statisticsCallback(
    _ handle: OpaquePointer?, _ json: UnsafeMutablePointer<CChar>?, _ length: Int, _ opaque: UnsafeMutableRawPointer?
) -> Int32 {
    guard let json, let context = ClientContext.from(opaque) else { return 0 }
    context.storeStatistics(String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self))
    return 0
}

/// `error_cb`: client-level errors (e.g. `_ALL_BROKERS_DOWN`, `_TRANSPORT`, `_FATAL`), queued for
/// `drainErrors()`. Without it librdkafka only logs them.
private func errorCallback(_ handle: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let context = ClientContext.from(opaque) else { return }
    let code = rd_kafka_resp_err_t(rawValue: err)
    if code == RD_KAFKA_RESP_ERR__FATAL, let handle, let fatal = KafkaError.fatalError(of: handle) {
        context.record(fatal)
    } else {
        context.record(.rdKafka(code, decodeCString(reason)))
    }
}

/// `log_cb`: runs on librdkafka's internal threads; forwards to the client's log handler.
private func logCallback(
    _ handle: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?
) {
    guard let handle, let context = ClientContext.from(rd_kafka_opaque(handle)),
          let logHandler = context.logHandler
    else { return }
    logHandler(KafkaLogRecord(level: level, facility: decodeCString(facility), message: decodeCString(message)))
}

/// `dr_msg_cb`: runs on the thread serving the producer's queue (its poll thread or `flush`);
/// completes the `send` whose id is the message opaque.
private func deliveryReportCallback(
    _ handle: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let context = ClientContext.from(opaque) else { return }
    let id = UInt(bitPattern: message.pointee._private)
    guard let completion = context.takeDelivery(id) else { return }
    let topic = message.pointee.rkt.map { decodeCString(rd_kafka_topic_name($0)) } ?? ""
    let err = message.pointee.err
    if err == RD_KAFKA_RESP_ERR_NO_ERROR {
        completion(.success(KafkaDeliveryReport(
            topic: topic, partition: message.pointee.partition, offset: message.pointee.offset)))
    } else if err == RD_KAFKA_RESP_ERR__FATAL, let handle, let fatal = KafkaError.fatalError(of: handle) {
        completion(.failure(fatal))
    } else {
        completion(.failure(.rdKafka(err, "delivery to \(topic) [\(message.pointee.partition)]")))
    }
}
