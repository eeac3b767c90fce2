internal import Foundation
internal import Synchronization

/// The last SIGTERM/SIGINT received (0: none). Written by the signal handler (a lock-free
/// atomic store is async-signal-safe); initialized in `install()` before the handler exists, so
/// the handler never runs a lazy global initializer.
private let receivedSignal = Atomic<Int32>(0)

/// SIGTERM and SIGINT, never lost: `install()` puts a handler in place (and unblocks the two
/// signals) at the very start of a
/// command (before that, the default action ends the process, which is harmless since nothing
/// has been consumed yet); a watcher thread runs the registered action once a signal has come,
/// also when it came before the action was registered (e.g. during weight loading).
///
/// (libdispatch signal sources need the signal ignored first; a signal arriving between that
/// and the source's registration is silently discarded, which left a worker running after a
/// SIGTERM sent during its start-up.)
public enum TerminationSignals {
    /// Installs the handler for SIGTERM and SIGINT (idempotent).
    public static func install() {
        _ = receivedSignal.load(ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in receivedSignal.store(signal, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
        // A parent may hand down a mask with these blocked (a process spawned from a libdispatch
        // thread inherits that thread's mask): unblock them here, in the main thread, so that
        // the handler runs; threads started later inherit this mask.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The signal received so far, if any.
    public static var received: Int32? {
        let value = receivedSignal.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// Runs `action` once, on a watcher thread, as soon as a signal has been received (checked
    /// every 50 ms). Call `install()` first.
    public static func onSignal(_ action: @escaping @Sendable (Int32) -> Void) {
        let thread = Thread {
            while true {
                if let signal = received {
                    action(signal)
                    return
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        thread.name = "universeg-signals"
        thread.start()
    }
}
