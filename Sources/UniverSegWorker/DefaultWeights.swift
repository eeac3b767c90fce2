import Foundation
import SegIO

/// Where the weights come from when a command is given no `--weights`:
/// 1. `$UNIVERSEG_WEIGHTS`;
/// 2. `<executable dir>/../share/universeg-worker/universeg-cpu.safetensors` (installed layout: /usr/bin and
///    /usr/share/universeg-worker for the Debian package, /usr/local for install.sh);
/// 3. `Config/models/universeg-cpu.safetensors` in the source tree this binary was built from.
enum DefaultWeights {
    static let fileName = "universeg-cpu.safetensors"

    static func candidates() -> [String] {
        var result: [String] = []
        if let env = ProcessInfo.processInfo.environment["UNIVERSEG_WEIGHTS"], !env.isEmpty { result.append(env) }
        // The running executable: /proc/self/exe, which also holds when the binary was started by
        // name through PATH (argv[0] is then a bare name); argv[0] where /proc is not mounted.
        var executables: [URL] = []
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            executables.append(URL(fileURLWithPath: path))
        }
        executables.append(URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath())
        for exe in executables {
            let path = exe.deletingLastPathComponent().appendingPathComponent("../share/universeg-worker/\(fileName)").standardizedFileURL.path
            if !result.contains(path) { result.append(path) }
        }
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
