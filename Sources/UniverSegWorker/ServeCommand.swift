import ArgumentParser
import Dispatch
import Foundation
import SegDaemon
import SegIO
import SegKafka
import SegKernels
import SegModel
import SegService

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker: consume segmentation requests from Kafka, publish masks and errors.",
        discussion: """
            Configuration: built-in defaults < --config FILE (JSON, see Config/universeg-worker.json) \
            < UNIVERSEG_* environment variables < these flags. An invalid configuration stops the \
            process before it consumes anything. SIGTERM/SIGINT drain in-flight work, commit and exit 0. \
            Needs librdkafka >= 2.x at run time (see README).
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

    func run() throws {
        var flags: [String: String] = [:]
        let given: [(String, String?)] = [
            ("kafka.brokers", brokers), ("kafka.group", group), ("store.url", store), ("model.weights", weights),
            ("kafka.requests_topic", requestsTopic), ("kafka.results_topic", resultsTopic),
            ("kafka.metrics_topic", metricsTopic), ("kafka.dlq_topic", dlqTopic),
            ("inference.max_in_flight", maxInFlight.map(String.init)),
        ]
        for case let (key, value?) in given { flags[key] = value }
        let file = try config.map { try FileIO.read($0, maxBytes: 1 << 20) }
        let settings = try WorkerConfiguration.load(file: file, fileName: config ?? "config file",
                                                    environment: ProcessInfo.processInfo.environment, flags: flags)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreadCount(settings.threads > 0 ? settings.threads : max(1, cores / settings.maxInFlight))

        let weightsFile = try WeightsFile(path: try DefaultWeights.resolve(settings.weights))
        let storeBackend = try SupportSetStore(url: settings.storeURL)
        let processor = RequestProcessor(
            weights: weightsFile, store: storeBackend, cache: SupportSetCache(maxBytes: settings.cacheBytes),
            imageLimits: ImageLimits(maxWidth: 16384, maxHeight: 16384, maxPixels: settings.maxImagePixels),
            workerName: ProcessInfo.processInfo.hostName + ":\(getpid())")

        var common = KafkaConfiguration(bootstrapServers: settings.brokers.split(separator: ",").map(String.init),
                                        settings.kafkaProperties)
        for (property, credential) in settings.kafkaSecretFiles {
            try common.setFromCredential(property, name: credential)
        }
        var consumerConfig = common
        consumerConfig["group.id"] = settings.group
        if consumerConfig["auto.offset.reset"] == nil { consumerConfig["auto.offset.reset"] = "earliest" }
        let log: @Sendable (String) -> Void = { line in
            FileHandle.standardError.write(Data(("universeg-worker: " + line + "\n").utf8))
        }
        // Warm-up: one inference before consuming, so the first request does not pay for it.
        let warm = InferenceSession(model: weightsFile.model)
        let size = weightsFile.model.configuration.inputSize
        let blank = [Float](repeating: 0, count: size * size)
        _ = try warm.logits(query: blank, support: try SupportTensors(images: [blank], labels: [blank], size: size))

        let worker = try SegmentationWorker(configuration: settings, processor: processor,
                                            consumerConfiguration: consumerConfig, producerConfiguration: common, log: log)
        let signals = [SIGTERM, SIGINT].map { sig -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { worker.requestStop() }
            source.resume()
            return source
        }
        log("ready: weights \(weightsFile.name) (\(weightsFile.model.configuration)), librdkafka \(librdkafkaVersion), store \(settings.storeURL)")
        try worker.run()
        withExtendedLifetime(signals) {}
    }
}
