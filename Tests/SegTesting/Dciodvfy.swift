/// dciodvfy (dicom3tools), the IOD checker every SEG the tests write goes through.
public enum Dciodvfy {
    /// What dciodvfy said of one file.
    public struct Report: Sendable {
        public var status: Int32
        /// Standard error, then standard output.
        public var output: String
        /// Lines that mention an error ("Error - ...").
        public var errors: [String]
        /// Lines that start with "Warning".
        public var warnings: [String]

        /// dciodvfy exits 0 also when it prints errors, so a file passes only with status 0 and no
        /// line that mentions one.
        public var passed: Bool { status == 0 && errors.isEmpty }
    }

    /// Runs `executable` on `file`.
    public static func check(_ file: String, executable: String = "/usr/bin/dciodvfy") throws -> Report {
        let result = try runToCompletion(executable, [file])
        let output = result.stderr + result.stdout
        let lines = output.split(separator: "\n").map(String.init)
        return Report(status: result.status, output: output, errors: lines.filter { $0.contains("Error") },
                      warnings: lines.filter { $0.hasPrefix("Warning") })
    }
}
