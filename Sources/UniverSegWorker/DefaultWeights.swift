import Foundation
import SegIO

/// Where the weights come from when a command is given no `--weights`:
/// 1. `$UNIVERSEG_WEIGHTS`;
/// 2. `<executable dir>/../share/universeg-worker/universeg-cpu.safetensors` (installed layout);
/// 3. `Config/models/universeg-cpu.safetensors` in the source tree this binary was built from.
enum DefaultWeights {
    static let fileName = "universeg-cpu.safetensors"

    static func candidates() -> [String] {
        var result: [String] = []
        if let env = ProcessInfo.processInfo.environment["UNIVERSEG_WEIGHTS"], !env.isEmpty { result.append(env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        result.append(exe.deletingLastPathComponent().appendingPathComponent("../share/universeg-worker/\(fileName)").standardizedFileURL.path)
        // Sources/UniverSegWorker/DefaultWeights.swift -> package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        result.append(root.appendingPathComponent("Config/models/\(fileName)").path)
        return result
    }

    /// The path to use: `explicit` if given, else the first default candidate that exists.
    static func resolve(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        if let found = candidates().first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw IOError(.fileNotFound,
                      "no --weights given and no shipped weights found (looked at: \(candidates().joined(separator: ", ")))")
    }
}
