import ArgumentParser
import Foundation
import SegDICOM
import SegHTTP
import SegKernels
import SegPlatform

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the version and the C libraries in use.")

    func run() throws {
        print("universeg-worker \(WorkerVersion.string)")
        print("librdkafka \(Platform.rdkafkaVersion)")
        print("libpng \(Platform.libpngVersion)")
        // Loads the DICOM shim library (other commands load it at their first DICOM call).
        print("DCMTK " + (DCMTK.loadError.map { "unavailable: \($0)" } ?? "\(DCMTK.version) (libUniverSegDCMTK.so)"))
        // Loads libcurl (other commands load it at their first HTTP exchange).
        print("HTTP: \(HTTPClient.libraryDescription)")
        print("OpenBLAS \(Platform.openBLAS)")
        print("OpenBLAS core: \(Platform.openBLASCore), \(Platform.openBLASCoreOrigin)")
        let builds = KernelISA.supportedHere.map(\.name).joined(separator: ", ")
        print("vector kernels: \(KernelISA.active.name) (this CPU runs \(builds); \(KernelISA.environmentVariable) chooses)")
        if let note = KernelISA.choiceNote { print("vector kernels: \(note)") }
        print("cores usable: \(Platform.availableCores) (affinity mask, of \(Platform.onlineCores) online)")
        print("systemd booted: \(Platform.bootedWithSystemd ? "yes" : "no")")
    }
}
