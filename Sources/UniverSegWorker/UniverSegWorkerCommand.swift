import ArgumentParser

@main
struct UniverSegWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "universeg-worker",
        abstract: "Few-shot medical image segmentation (UniverSeg) on the CPU.",
        discussion: """
            A segmentation task is defined by a support set: a few example images with their \
            label masks. `serve` is the Kafka worker; `enqueue` sends requests and `replay` reprocesses a time range; `segment` runs the network on local files; `eval` measures Dice on a labelled dataset; `bench` measures speed.
            """,
        version: WorkerVersion.string,
        subcommands: [ServeCommand.self, EnqueueCommand.self, ReplayCommand.self, SegmentCommand.self, EvalCommand.self, BenchCommand.self, SampleCommand.self, VersionCommand.self]
    )
}

enum WorkerVersion {
    static let string = "0.1.0"
}
