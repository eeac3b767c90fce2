internal import Foundation
internal import SegIO

/// A list of evaluation tasks, each a labelled dataset directory and one of its labels.
///
/// Text form (`eval --suite FILE`): one task per line, `DIR LABEL` (whitespace between, DIR
/// relative to the file's directory unless absolute); blank lines and lines starting with `#`
/// are skipped. On the command line: `--task DIR:LABEL`.
package struct EvaluationSuite: Sendable, Equatable {
    package struct Task: Sendable, Equatable {
        package let directory: String
        package let label: String

        package init(directory: String, label: String) {
            self.directory = directory
            self.label = label
        }

        /// `DIR:LABEL` (the last colon separates them).
        package init(argument: String) throws {
            guard let colon = argument.lastIndex(of: ":"), colon != argument.startIndex,
                  argument.index(after: colon) != argument.endIndex else {
                throw IOError(.invalidSuite, "a task is DIR:LABEL, not '\(argument)'")
            }
            try self.init(checkedDirectory: String(argument[..<colon]), label: String(argument[argument.index(after: colon)...]))
        }

        init(checkedDirectory directory: String, label: String) throws {
            guard !label.isEmpty, !label.contains("/"), label != "..", label != "." else {
                throw IOError(.invalidSuite, "label '\(label)' is not a folder name")
            }
            self.init(directory: directory, label: label)
        }
    }

    package let tasks: [Task]

    package init(tasks: [Task]) {
        self.tasks = tasks
    }

    /// Parses the text form; `base` resolves relative directories.
    package init(text: String, base: String) throws {
        var tasks: [Task] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 2 else {
                throw IOError(.invalidSuite, "suite line \(number + 1): expected 'DIR LABEL', got \(fields.count) fields")
            }
            let directory = fields[0].hasPrefix("/") ? String(fields[0]) : base + "/" + fields[0]
            do {
                tasks.append(try Task(checkedDirectory: directory, label: String(fields[1])))
            } catch let error as IOError {
                throw IOError(.invalidSuite, "suite line \(number + 1): \(error.message)")
            }
        }
        guard !tasks.isEmpty else { throw IOError(.invalidSuite, "the suite lists no task") }
        self.tasks = tasks
    }

    /// Reads and parses a suite file (at most 1 MiB).
    package init(path: String) throws {
        let bytes = try FileIO.read(path, maxBytes: 1 << 20)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw IOError(.invalidSuite, "\(path): not UTF-8 text")
        }
        try self.init(text: text, base: URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }
}

/// UniverSeg's lead over the better of the two baselines, in Dice points.
package enum Margins {
    package struct Entry: Codable, Sendable, Equatable {
        package let supportSize: Int
        package let ensemble: Int
        package let universeg: Double
        package let betterBaseline: Double
        package var margin: Double { universeg - betterBaseline }

        enum CodingKeys: String, CodingKey {
            case supportSize = "support_size", ensemble, universeg, betterBaseline = "better_baseline"
        }
    }

    /// One entry per (N, K) of the report, in its order.
    package static func of(_ report: FewShotEvaluation.Report) -> [Entry] {
        report.rows.filter { $0.method == .universeg }.map { model in
            let baselines = report.rows.filter {
                $0.method != .universeg && $0.supportSize == model.supportSize && $0.ensemble == model.ensemble
            }
            return Entry(supportSize: model.supportSize, ensemble: model.ensemble, universeg: model.dice,
                         betterBaseline: baselines.map(\.dice).max() ?? 0)
        }
    }

    /// Mean margin over the reports, per (N, K) that every report evaluated.
    package static func mean(_ reports: [FewShotEvaluation.Report]) -> [(supportSize: Int, ensemble: Int, margin: Double)] {
        let all = reports.map(of)
        guard let first = all.first else { return [] }
        return first.compactMap { entry in
            let matching = all.compactMap { entries in
                entries.first { $0.supportSize == entry.supportSize && $0.ensemble == entry.ensemble }?.margin
            }
            guard matching.count == all.count else { return nil }
            return (entry.supportSize, entry.ensemble, matching.reduce(0, +) / Double(matching.count))
        }
    }
}
