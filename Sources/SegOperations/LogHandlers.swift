internal import CSystemd
public import Foundation
public import Logging

/// Where log records go: structured journald records when stderr is connected to the journal
/// (systemd sets `JOURNAL_STREAM` to the device and inode of that stream), one plain line per
/// record on stderr otherwise.
///
/// Metadata keys are written in snake case (`request_id`, `kafka_offset`) and become journald
/// fields in upper case (`REQUEST_ID`, `KAFKA_OFFSET`), so
/// `journalctl -u universeg-worker REQUEST_ID=abc` finds every record of a request.
/// Callers must never put image data or free text from requests into messages or metadata.
public enum LogOutput {
    /// Installs the process-wide swift-log backend (call once, first thing in `main`).
    public static func bootstrap(identifier: String = "universeg-worker", level: Logger.Level = .info) {
        let journal = stderrIsJournal()
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = journal
                ? JournalLogHandler(label: label, identifier: identifier)
                : LineLogHandler(label: label, identifier: identifier, stream: .standardError)
            handler.logLevel = level
            return handler
        }
    }

    /// Whether fd 2 is the stream named by `JOURNAL_STREAM` ("device:inode").
    public static func stderrIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// The journald field name for a metadata key: upper case, [A-Z0-9_], not starting with "_"
    /// or a digit (journald rejects those), at most 64 characters.
    public static func journalFieldName(_ key: String) -> String {
        var name = String(key.uppercased().unicodeScalars.map { scalar -> Character in
            let c = Character(scalar)
            return (c.isASCII && (c.isLetter || c.isNumber)) ? c : "_"
        })
        while name.hasPrefix("_") { name.removeFirst() }
        if name.first?.isNumber ?? true { name = "F" + name }
        return String(name.prefix(64))
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func flatten(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let s): s.description
        case .array(let values): "[" + values.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let d): "{" + d.sorted { $0.key < $1.key }.map { "\($0.key)=\(flatten($0.value))" }.joined(separator: ",") + "}"
        }
    }
}

/// Structured records through `sd_journal_sendv`: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
/// CODE_FILE/CODE_LINE/CODE_FUNC, LOGGER, plus one field per metadata key.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let label: String
    public let identifier: String

    public init(label: String, identifier: String) {
        self.label = label
        self.identifier = identifier
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String] = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(LogOutput.syslogPriority(event.level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "LOGGER=\(label)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        for (key, value) in merged {
            fields.append("\(LogOutput.journalFieldName(key))=\(LogOutput.flatten(value))")
        }
        Self.send(fields)
    }

    /// Sends one record; values may contain newlines (sd_journal_sendv is binary safe).
    static func send(_ fields: [String]) {
        let buffers = fields.map { Array($0.utf8) }
        var pointers: [UnsafeMutablePointer<UInt8>] = []
        defer { pointers.forEach { $0.deallocate() } }
        var vectors: [iovec] = []
        for bytes in buffers {
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
            p.initialize(from: bytes, count: bytes.count)
            pointers.append(p)
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(p), iov_len: bytes.count))
        }
        _ = vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
    }
}

/// One line per record: `2026-11-27T10:00:00.123Z info universeg-worker: message key=value ...`.
/// Newlines in messages and values are escaped, so one record is always one line.
public struct LineLogHandler: LogHandler {
    public enum Stream: Sendable { case standardError, standardOutput }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let label: String
    public let identifier: String
    let stream: Stream

    public init(label: String, identifier: String, stream: Stream) {
        self.label = label
        self.identifier = identifier
        self.stream = stream
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        let line = Self.format(time: Date(), level: event.level, identifier: identifier,
                               message: event.message.description, metadata: merged)
        let data = Data((line + "\n").utf8)
        switch stream {
        case .standardError: FileHandle.standardError.write(data)
        case .standardOutput: FileHandle.standardOutput.write(data)
        }
    }

    public static func format(time: Date, level: Logger.Level, identifier: String, message: String,
                              metadata: Logger.Metadata) -> String {
        var line = "\(time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))) \(level) \(identifier): \(escape(message))"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text = escape(LogOutput.flatten(value))
            line += text.contains(" ") || text.isEmpty ? " \(key)=\"\(text)\"" : " \(key)=\(text)"
        }
        return line
    }

    static func escape(_ s: String) -> String {
        guard s.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\"" }) else { return s }
        return s.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
            .replacingOccurrences(of: "\"", with: "\\\"")
    }
}
