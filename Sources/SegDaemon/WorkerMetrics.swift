internal import Foundation
public import SegOperations
internal import SegService

/// The worker's Prometheus metrics (one registry per process), also published as JSON
/// snapshots on the metrics topic. Names follow Prometheus conventions (`_total` counters,
/// `_seconds` histograms, base units).
public final class WorkerMetrics: Sendable {
    public let registry: MetricsRegistry

    static let requests = "universeg_requests_total"
    static let deadLetters = "universeg_dead_letters_total"
    static let stage = "universeg_request_stage_seconds"
    static let inFlight = "universeg_in_flight_requests"
    static let queued = "universeg_queued_requests"
    static let paused = "universeg_paused_partitions"
    static let lag = "universeg_consumer_lag"
    static let cacheHits = "universeg_support_cache_hits_total"
    static let cacheMisses = "universeg_support_cache_misses_total"
    static let cacheBytes = "universeg_support_cache_bytes"
    static let cacheEntries = "universeg_support_cache_entries"
    static let model = "universeg_model_info"
    static let rebalances = "universeg_rebalance_events_total"
    static let deliveryFailures = "universeg_delivery_failures_total"
    static let healthy = "universeg_healthy"
    static let ready = "universeg_ready"
    static let rss = "process_resident_memory_bytes"
    static let dependencyUp = "universeg_dependency_up"

    public init(registry: MetricsRegistry = MetricsRegistry(), modelName: String, modelSHA256: String) {
        self.registry = registry
        registry.register(Self.requests, help: "Requests finished, by outcome (ok, error) and error code.", kind: .counter)
        registry.register(Self.deadLetters, help: "Dead-letter records acknowledged by the broker.", kind: .counter)
        registry.register(Self.stage, help: "Request latency per stage (queue, fetch, inference, total).", kind: .histogram)
        registry.register(Self.inFlight, help: "Requests taken from Kafka and not yet acknowledged.", kind: .gauge)
        registry.register(Self.queued, help: "Requests waiting for an executor slot.", kind: .gauge)
        registry.register(Self.paused, help: "Partitions paused by back-pressure.", kind: .gauge)
        registry.register(Self.lag, help: "Consumer lag per partition (librdkafka statistics).", kind: .gauge)
        registry.register(Self.cacheHits, help: "Support-set cache hits.", kind: .counter)
        registry.register(Self.cacheMisses, help: "Support-set cache misses (loads).", kind: .counter)
        registry.register(Self.cacheBytes, help: "Bytes of preprocessed support sets in the cache.", kind: .gauge)
        registry.register(Self.cacheEntries, help: "Support sets in the cache.", kind: .gauge)
        registry.register(Self.model, help: "The loaded model (value 1).", kind: .gauge)
        registry.register(Self.rebalances, help: "Partitions assigned, revoked or lost.", kind: .counter)
        registry.register(Self.deliveryFailures, help: "Records the broker did not acknowledge after retries.", kind: .counter)
        registry.register(Self.healthy, help: "1 while the poll loop and the executor make progress.", kind: .gauge)
        registry.register(Self.ready, help: "1 once the worker consumes (after warm-up and subscription).", kind: .gauge)
        registry.register(Self.rss, help: "Resident memory of the process.", kind: .gauge)
        registry.register(Self.dependencyUp, help: "0 while requests wait for this dependency (store, dicomweb:NAME) to come back, else 1.", kind: .gauge)
        registry.set(Self.model, [("name", modelName), ("sha256", modelSHA256)], 1)
        registry.set(Self.ready, 0)
        registry.set(Self.healthy, 1)
        registry.add(Self.requests, [("outcome", "ok"), ("code", "")], 0)  // the ok series exists from the start
    }

    func finished(_ outcome: RequestProcessor.Outcome) {
        switch outcome {
        case .ok(_, let result):
            registry.add(Self.requests, [("outcome", "ok"), ("code", "")])
            if let t = result.timingsMs { observe(t) }
        case .failed(_, _, let error):
            registry.add(Self.requests, [("outcome", "error"), ("code", error.code.rawValue)])
            registry.add(Self.deadLetters)
        case .unavailable:
            break
        }
    }

    /// Declares a dependency (value 1) so that its series exists before any outage.
    public func declareDependency(_ name: String) { registry.set(Self.dependencyUp, [("dependency", name)], 1) }

    func dependency(_ name: String, up: Bool) { registry.set(Self.dependencyUp, [("dependency", name)], up ? 1 : 0) }

    private func observe(_ t: SegmentationResult.Timings) {
        for (stage, ms) in [("queue", t.queue), ("fetch", t.fetch), ("inference", t.inference), ("total", t.total)] {
            registry.observe(Self.stage, [("stage", stage)], ms / 1000)
        }
    }

    func rebalance(_ kind: String, partitions: Int) {
        registry.add(Self.rebalances, [("event", kind)], Double(partitions))
    }

    func deliveryFailed() { registry.add(Self.deliveryFailures) }

    public func setReady(_ ready: Bool) { registry.set(Self.ready, ready ? 1 : 0) }

    func update(counters: SegmentationWorker.Counters, queued: Int, lag: [(String, Int32, Int64)],
                cache: SupportSetCache.Statistics, healthy: Bool, residentBytes: Int?) {
        registry.set(Self.inFlight, Double(counters.inFlight))
        registry.set(Self.queued, Double(queued))
        registry.set(Self.paused, Double(counters.pausedPartitions))
        registry.replaceAll(Self.lag, lag.map { ([("topic", $0.0), ("partition", String($0.1))], Double($0.2)) })
        registry.set(Self.cacheHits, Double(cache.hits))
        registry.set(Self.cacheMisses, Double(cache.misses))
        registry.set(Self.cacheBytes, Double(cache.bytes))
        registry.set(Self.cacheEntries, Double(cache.entries))
        registry.set(Self.healthy, healthy ? 1 : 0)
        if let residentBytes { registry.set(Self.rss, Double(residentBytes)) }
    }
}
