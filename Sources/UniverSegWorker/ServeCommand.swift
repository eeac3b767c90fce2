import ArgumentParser
import Dispatch
import Foundation
import Logging
import SegDaemon
import SegDICOM
import SegIO
import SegKafka
import SegModel
import SegOperations
import SegService
import Synchronization

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker: consume segmentation requests from Kafka, publish masks and errors.",
        discussion: """
            Configuration: built-in defaults < --config FILE (JSON, see Config/universeg-worker.json) \
            < UNIVERSEG_* environment variables < these flags. An invalid configuration stops the \
            process before it consumes anything. Under systemd (Type=notify) READY=1 is sent after \
            the weights are loaded, one warm-up inference has run and the subscription is active; \
            WATCHDOG=1 only while the poll loop and the executor make progress. SIGTERM/SIGINT \
            drain in-flight work, commit and exit 0. Prometheus metrics, /healthz and /readyz on \
            metrics.address. Needs librdkafka >= 2.x at run time (see README).
            """)

    @Option(help: "JSON configuration file.") var config: String?
    @Option(help: "Kafka bootstrap servers (kafka.brokers).") var brokers: String?
    @Option(help: "Consumer group (kafka.group).") var group: String?
    @Option(help: "Support-set store URL: file:///path or http(s)://host/prefix (store.url).") var store: String?
    @Option(help: "Weights file (model.weights). Default: the shipped weights.") var weights: String?
    @Option(name: .customLong("requests-topic")) var requestsTopic: String?
    @Option(name: .customLong("results-topic")) var resultsTopic: String?
    @Option(name: .customLong("metrics-topic")) var metricsTopic: String?
    @Option(name: .customLong("dlq-topic")) var dlqTopic: String?
    @Option(name: .customLong("max-in-flight"), help: "Requests processed at once (inference.max_in_flight).") var maxInFlight: Int?
    @Option(name: .customLong("metrics-address"), help: "Prometheus endpoint host:port, or off (metrics.address).") var metricsAddress: String?
    @Option(name: .customLong("dicomweb-server"), help: ArgumentHelp(
        "A DICOMweb server requests may name, as NAME=URL (repeatable; dicomweb.servers).", valueName: "NAME=URL"))
    var dicomwebServers: [String] = []

    var flags: [String: String] {
        var flags: [String: String] = [:]
        let given: [(String, String?)] = [
            ("kafka.brokers", brokers), ("kafka.group", group), ("store.url", store), ("model.weights", weights),
            ("kafka.requests_topic", requestsTopic), ("kafka.results_topic", resultsTopic),
            ("kafka.metrics_topic", metricsTopic), ("kafka.dlq_topic", dlqTopic),
            ("inference.max_in_flight", maxInFlight.map(String.init)), ("metrics.address", metricsAddress),
        ]
        for case let (key, value?) in given { flags[key] = value }
        for entry in dicomwebServers {
            let parts = entry.split(separator: "=", maxSplits: 1)
            // A malformed entry becomes an empty name, which the configuration rejects with a message.
            flags[WorkerConfiguration.dicomwebServerFlagPrefix + (parts.count == 2 ? String(parts[0]) : "")] = parts.count == 2 ? String(parts[1]) : entry
        }
        return flags
    }

    func run() throws {
        TerminationSignals.install()
        let runtime = try WorkerRuntime(configFile: config, flags: flags, label: "universeg.serve")
        let settings = runtime.settings
        let logger = runtime.logger
        let notifier = SystemdNotifier()
        let metrics = WorkerMetrics(modelName: runtime.weights.name, modelSHA256: runtime.weights.sha256)

        // The endpoint binds before anything else happens, so a busy port is a start-up error.
        let current = Mutex<(worker: SegmentationWorker?, ready: Bool)>((nil, false))
        let endpoint = try settings.metricsAddress.map { address in
            try HTTPEndpoint(address: address) { path in
                let (worker, ready) = current.withLock { ($0.worker, $0.ready) }
                switch path {
                case "/metrics":
                    return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.registry.render())
                case "/healthz":
                    let healthy = worker?.health().isHealthy ?? true
                    return .init(status: healthy ? 200 : 503, body: healthy ? "ok\n" : "stalled\n")
                case "/readyz":
                    // Not ready while stopping or while every Kafka broker is unreachable.
                    let isReady = ready && !(worker?.isStopping ?? false) && (worker?.kafkaReachable ?? true)
                    return .init(status: isReady ? 200 : 503, body: isReady ? "ready\n" : "not ready\n")
                default:
                    return .init(status: 404, body: "not found: try /metrics, /healthz, /readyz\n")
                }
            }
        }
        endpoint?.start()
        defer { endpoint?.stop() }

        try runtime.warmUp()
        // With DICOMweb servers configured, the DICOM library is loaded now, not by the first DICOM
        // request (it is loaded at the first DICOM call, so that other commands skip it). Without
        // it, DICOM requests wait as on a dependency that is down; PNG requests are served.
        if !settings.dicomwebServers.isEmpty, let reason = DCMTK.loadError {
            logger.error("DICOM requests will wait: the DICOM library cannot be loaded", metadata: ["reason": "\(reason)"])
        }
        let worker = try SegmentationWorker(
            configuration: settings, processor: runtime.processor,
            consumerConfiguration: runtime.consumerConfiguration(group: settings.group),
            producerConfiguration: runtime.common, logger: logger, metrics: metrics)
        current.withLock { $0.worker = worker }
        TerminationSignals.onSignal { _ in
            notifier.stopping(status: "draining in-flight requests")
            worker.requestStop()
        }
        try worker.start()
        current.withLock { $0.ready = true }
        metrics.setReady(true)
        logger.notice("ready", metadata: [
            "model": "\(runtime.weights.name)", "model_sha256": "\(runtime.weights.sha256.prefix(12))",
            "architecture": "\(runtime.weights.model.configuration)", "librdkafka": "\(librdkafkaVersion)",
            "store": "\(settings.storeURL)", "group": "\(settings.group)",
            "metrics": "\(endpoint.map { "port \($0.port)" } ?? "off")",
        ])
        notifier.ready(status: "consuming \(settings.requestsTopic) as group \(settings.group)")
        let supervisor = Supervisor(worker: worker, notifier: notifier, logger: logger)
        supervisor.start()
        defer { supervisor.stop() }
        do {
            try worker.run()
        } catch where worker.isStopping {
            // SIGTERM began the stop, but it could not finish acknowledging: results still
            // undelivered at the producer's flush deadline, or a failed consumer close. Their
            // requests' offsets are not committed, so they are redelivered (at-least-once). The
            // units count this status as a clean stop (SuccessExitStatus=).
            logger.warning("stopped with work not acknowledged; it will be redelivered", metadata: ["error": "\(error)"])
            throw ExitCode(ServeCommand.stoppedUnacknowledgedStatus)
        }
    }

    /// Exit status of a stop (SIGTERM) that ended with work not acknowledged: EX_TEMPFAIL.
    static let stoppedUnacknowledgedStatus: Int32 = 75
}
