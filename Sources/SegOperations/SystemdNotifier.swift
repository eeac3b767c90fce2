internal import CSystemd
internal import Foundation

/// The sd_notify protocol (libsystemd): READY=1, WATCHDOG=1, STATUS=..., STOPPING=1 to the
/// datagram socket named by `NOTIFY_SOCKET`. Without that variable (not run by systemd) every
/// call is a no-op, so the same code runs under systemd, in a terminal and in tests.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether a notification socket is configured.
    public var isEnabled: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), from `WATCHDOG_USEC`
    /// (and `WATCHDOG_PID` when set, which must be this process); nil when the watchdog is off.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// Sends one or more newline-separated assignments; returns whether a message was sent.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    @discardableResult public func ready(status: String? = nil) -> Bool {
        notify(status.map { "READY=1\nSTATUS=\(Self.sanitize($0))" } ?? "READY=1")
    }

    @discardableResult public func watchdog() -> Bool { notify("WATCHDOG=1") }

    @discardableResult public func status(_ text: String) -> Bool { notify("STATUS=\(Self.sanitize(text))") }

    @discardableResult public func stopping(status: String? = nil) -> Bool {
        notify(status.map { "STOPPING=1\nSTATUS=\(Self.sanitize($0))" } ?? "STOPPING=1")
    }

    /// STATUS is one line: newlines would start new assignments.
    static func sanitize(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
