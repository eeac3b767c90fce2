import Foundation
import Logging
import SegDaemon
import SegDICOM
import SegDICOMweb
import SegIO
import SegKafka
import SegKernels
import SegModel
import SegOperations
import SegPlatform
import SegService

/// What `serve` and `replay` share: configuration (defaults < file < environment < flags),
/// logging, weights, support-set store, request processor and Kafka client settings.
struct WorkerRuntime {
    let settings: WorkerConfiguration
    let weights: WeightsFile
    let processor: RequestProcessor
    let common: KafkaConfiguration
    let logger: Logger

    /// Loads and validates everything a worker needs before it touches Kafka; any error here
    /// stops the process with one clear message and a non-zero exit.
    init(configFile: String?, flags: [String: String], label: String) throws {
        let file = try configFile.map { try FileIO.read($0, maxBytes: 1 << 20) }
        let settings = try WorkerConfiguration.load(file: file, fileName: configFile ?? "config file",
                                                    environment: ProcessInfo.processInfo.environment, flags: flags)
        LogOutput.bootstrap(level: Logger.Level(rawValue: settings.logLevel) ?? .info)
        let cores = Platform.availableCores
        BLAS.setThreadCount(settings.threads > 0 ? settings.threads : max(1, cores / settings.maxInFlight))
        let weights = try WeightsFile(path: try DefaultWeights.resolve(settings.weights))
        let store = try SupportSetStore(url: settings.storeURL)
        self.processor = RequestProcessor(
            weights: weights, store: store, cache: SupportSetCache(maxBytes: settings.cacheBytes),
            imageLimits: ImageLimits(maxWidth: 16384, maxHeight: 16384, maxPixels: settings.maxImagePixels),
            requestLimits: requestLimits(settings),
            workerName: ProcessInfo.processInfo.hostName + ":\(getpid())",
            minimumInferenceTimeForTesting: minimumInferenceTimeForTesting(ProcessInfo.processInfo.environment),
            inferenceGateForTesting: ProcessInfo.processInfo.environment["UNIVERSEG_TEST_INFERENCE_GATE"].flatMap { $0.isEmpty ? nil : $0 },
            dicom: try dicomSettings(settings, environment: ProcessInfo.processInfo.environment))
        var common = KafkaConfiguration(bootstrapServers: settings.brokers.split(separator: ",").map(String.init),
                                        settings.kafkaProperties)
        for (property, credential) in settings.kafkaSecretFiles {
            try common.setFromCredential(property, name: credential)
        }
        self.settings = settings
        self.weights = weights
        self.common = common
        self.logger = Logger(label: label)
    }

    func consumerConfiguration(group: String) -> KafkaConfiguration {
        var c = common
        c["group.id"] = group
        if c["auto.offset.reset"] == nil { c["auto.offset.reset"] = "earliest" }
        return c
    }

    /// One inference before consuming, so the first request does not pay for first-touch costs
    /// (and a broken model fails before READY=1).
    func warmUp() throws {
        let session = InferenceSession(model: weights.model)
        let size = weights.model.configuration.inputSize
        let blank = [Float](repeating: 0, count: size * size)
        _ = try session.logits(query: blank, support: try SupportTensors(images: [blank], labels: [blank], size: size))
    }
}

/// The DICOM part of the processor: one client per configured DICOMweb server, with its secrets
/// read from systemd credentials, and the DICOM limits.
func dicomSettings(_ settings: WorkerConfiguration, environment: [String: String]) throws -> DICOMSettings {
    var clients: [String: DICOMwebClient] = [:]
    for (name, server) in settings.dicomwebServers {
        guard let url = URL(string: server.url) else { throw ConfigurationError("dicomweb.servers.\(name): url is not valid") }
        var auth = DICOMwebServer.Auth.none
        if let credential = server.bearerTokenCredential {
            auth = .bearer(try readCredential(credential, for: "dicomweb.servers.\(name)", environment: environment))
        } else if let user = server.username, let credential = server.passwordCredential {
            auth = .basic(user: user, password: try readCredential(credential, for: "dicomweb.servers.\(name)", environment: environment))
        }
        clients[name] = DICOMwebClient(server: DICOMwebServer(name: name, baseURL: url, auth: auth, caFile: server.caFile,
                                                              timeoutSeconds: server.timeoutSeconds))
    }
    var limits = DICOMLimits()
    limits.maxFrames = settings.dicomMaxFrames
    limits.maxInstanceBytes = settings.dicomMaxInstanceBytes
    return DICOMSettings(servers: clients, limits: limits, maxRequestBytes: settings.dicomMaxRequestBytes,
                         softwareVersion: "universeg-worker \(WorkerVersion.string)")
}

/// A secret from `$CREDENTIALS_DIRECTORY/NAME` (systemd LoadCredential=), without one trailing newline.
/// Errors name the credential, never its contents.
func readCredential(_ name: String, for key: String, environment: [String: String]) throws -> String {
    guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
        throw ConfigurationError("\(key): credential '\(name)' needs CREDENTIALS_DIRECTORY (LoadCredential= in the unit)")
    }
    guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
        throw ConfigurationError("\(key): credential name '\(name)' is not a file name")
    }
    guard let bytes = try? FileIO.read(directory + "/" + name, maxBytes: 64 << 10), var text = String(validating: bytes, as: UTF8.self) else {
        throw ConfigurationError("\(key): credential '\(name)' cannot be read as UTF-8 text of at most 64 KiB")
    }
    if text.last == "\n" || text.last == "\r\n" { text.removeLast() }
    return text
}

/// UNIVERSEG_TEST_INFERENCE_GATE (tests only) names a file every inference waits for; see
/// RequestProcessor.inferenceGateForTesting.
/// UNIVERSEG_TEST_MIN_INFERENCE_MS (tests only): every inference takes at least this many
/// milliseconds, so a test of a long request is long by construction on any machine.
private func minimumInferenceTimeForTesting(_ environment: [String: String]) -> Duration? {
    guard let text = environment["UNIVERSEG_TEST_MIN_INFERENCE_MS"], let ms = Int(text), ms > 0 else { return nil }
    return .milliseconds(ms)
}

private func requestLimits(_ settings: WorkerConfiguration) -> SegmentationRequest.Limits {
    var limits = SegmentationRequest.Limits()
    limits.maxImageBytes = settings.maxImageBytes
    return limits
}
