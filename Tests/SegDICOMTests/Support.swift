import Foundation
import SegDICOM
import SegTesting
import Testing

/// The repository root (three levels above this file).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Runs `executable` with `arguments` and collects its output.
func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
    try runToCompletion(executable, arguments)
}

/// The first of `candidates` that is an executable file.
func findExecutable(_ name: String) -> String? {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
    for directory in paths + ["/usr/bin", "/usr/local/bin"] {
        let path = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

enum Tools {
    /// python3 with pydicom, highdicom and numpy importable.
    static let python: String? = {
        guard let python = findExecutable("python3"),
            let result = try? runProcess(python, ["-c", "import pydicom, highdicom, numpy"]), result.status == 0
        else { return nil }
        return python
    }()
    static let dciodvfy: String? = FileManager.default.isExecutableFile(atPath: "/usr/bin/dciodvfy")
        ? "/usr/bin/dciodvfy" : findExecutable("dciodvfy")
    /// DCMTK's command-line codecs, used by the fixture script for the compressed variants.
    static let dcmtkTools = ["dcmconv", "dcmcrle", "dcmcjpeg", "dcmcjpls"].allSatisfy { findExecutable($0) != nil }
    static let fixturesAvailable = python != nil && dcmtkTools
}

/// Fixtures made once per test process by Scripts/make_dicom_fixtures.py (its docstring gives the formulas).
enum Fixtures {
    nonisolated(unsafe) private static var removeAtExit: String?

    static let directory: String? = {
        guard let python = Tools.python, Tools.dcmtkTools else { return nil }
        let path = NSTemporaryDirectory() + "segdicom-fixtures-\(getpid())-\(UUID().uuidString.prefix(8))"
        let script = repositoryRoot.appendingPathComponent("Scripts/make_dicom_fixtures.py").path
        guard let result = try? runProcess(python, [script, path]), result.status == 0 else {
            Issue.record("make_dicom_fixtures.py failed")
            return nil
        }
        removeAtExit = path
        atexit {
            if let path = Fixtures.removeAtExit { try? FileManager.default.removeItem(atPath: path) }
        }
        return path
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        let directory = try #require(directory, "fixtures were not generated")
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
    }

    static func path(_ name: String) throws -> String {
        try #require(directory, "fixtures were not generated") + "/" + name
    }

    static func instance(_ name: String, limits: DICOMLimits = DICOMLimits()) throws -> DICOMInstance {
        try DICOMInstance.parse(bytes(name), limits: limits)
    }
}

/// The stored value formula of the CT fixtures (slice k), as modality values (slope 0.5, intercept -100).
func ctExpected(size: Int, slice k: Int) -> [Float] {
    var values = [Float](repeating: 0, count: size * size)
    for r in 0..<size {
        for c in 0..<size {
            let stored = (7 * r + 13 * c + 31 * k) % 3000 - 1000
            values[r * size + c] = Float(Double(stored) * 0.5 - 100)
        }
    }
    return values
}

func grid(rows: Int, columns: Int, _ f: (Int, Int) -> Double) -> [Float] {
    var values = [Float](repeating: 0, count: rows * columns)
    for r in 0..<rows { for c in 0..<columns { values[r * columns + c] = Float(f(r, c)) } }
    return values
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func meanAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.reduce(0, +) / Float(max(a.count, 1))
}

/// The DICOMError `body` throws, or nil (another error is recorded as an issue).
func dicomError(_ body: () throws -> Void) -> DICOMError? {
    do {
        try body()
        return nil
    } catch let error as DICOMError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
