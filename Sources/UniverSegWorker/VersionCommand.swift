import ArgumentParser
import Foundation
import SegPlatform

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the version and the C libraries in use.")

    func run() throws {
        print("universeg-worker \(WorkerVersion.string)")
        print("librdkafka \(Platform.rdkafkaVersion)")
        print("libpng \(Platform.libpngVersion)")
        print("OpenBLAS \(Platform.openBLAS)")
        print("OpenBLAS core: \(Platform.openBLASCore), \(Platform.openBLASCoreOrigin)")
        let features = Platform.kernelCPUFeatures
        print("kernels: \(features.isEmpty ? "baseline instruction set (portable build)" : "compiled for " + features.joined(separator: "+").uppercased())")
        print("cores usable: \(Platform.availableCores) (affinity mask, of \(Platform.onlineCores) online)")
        print("systemd booted: \(Platform.bootedWithSystemd ? "yes" : "no")")
    }
}
