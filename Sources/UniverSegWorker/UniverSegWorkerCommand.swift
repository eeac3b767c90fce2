import ArgumentParser
import Foundation
import SegKernels
import SegPlatform

@main
struct UniverSegWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "universeg-worker",
        abstract: "Few-shot medical image segmentation (UniverSeg) on the CPU.",
        discussion: """
            A segmentation task is defined by a support set: a few example images with their \
            label masks. `serve` is the Kafka worker; `enqueue` sends requests and `replay` reprocesses a time range; `segment` runs the network on local files (PNG or DICOM); `support import` builds a support set from a DICOM series and its SEG; `eval` measures Dice on a labelled dataset; `bench` measures speed.
            """,
        version: WorkerVersion.string,
        subcommands: [ServeCommand.self, EnqueueCommand.self, ReplayCommand.self, SegmentCommand.self, SupportCommand.self, EvalCommand.self, BenchCommand.self, SampleCommand.self, VersionCommand.self]
    )

    static func main() {
        // OpenBLAS's thread pool goes first: its workers, started when the library loaded, can be
        // running OpenBLAS's own lazy initialization, which writes the kernel table that the core
        // switch below clears and refills (a start-up crash seen once on a loaded machine, when
        // the switch read the table back as NULL).
        BLAS.stopIdleThreadPool()
        // Debian's OpenBLAS 0.3.21 falls back to generic SSE kernels on CPUs newer than it knows
        // (2.7x slower on a Xeon of family 6, model 207): switch to the best core this CPU runs,
        // unless OPENBLAS_CORETYPE was set or UNIVERSEG_OPENBLAS_AUTOCORE=0.
        Platform.chooseBetterOpenBLASCoreIfNeeded()
        Self.main(nil)
    }
}

enum WorkerVersion {
    static let string = "0.1.0"
}
