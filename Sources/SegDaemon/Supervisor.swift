internal import Foundation
public import Logging
public import SegOperations
internal import Synchronization

/// Tells systemd how the worker is doing, on its own thread:
/// - WATCHDOG=1 every half watchdog interval, but only while `SegmentationWorker.health()` says
///   the poll loop and the executor make progress; a stalled executor stops the pings, so
///   systemd (WatchdogSec=) restarts the service;
/// - STATUS= with in-flight, processed, failed and lag, whenever it changes.
/// READY=1 and STOPPING=1 are sent by the serve command at the matching moments.
public final class Supervisor: Sendable {
    let worker: SegmentationWorker
    let notifier: SystemdNotifier
    let logger: Logger
    let stopped = Atomic<Bool>(false)
    let done = DispatchSemaphore(value: 0)

    public init(worker: SegmentationWorker, notifier: SystemdNotifier, logger: Logger) {
        self.worker = worker
        self.notifier = notifier
        self.logger = logger
    }

    /// Starts the thread (after READY=1).
    public func start() {
        let watchdog = notifier.watchdogInterval
        let period = watchdog.map { max($0 / 2, .milliseconds(50)) } ?? .seconds(2)
        let thread = Thread { [self] in
            var lastStatus = ""
            var wasHealthy = true
            while !stopped.load(ordering: .acquiring) {
                let health = worker.health()
                if health.isHealthy {
                    if watchdog != nil { notifier.watchdog() }
                    if !wasHealthy { logger.notice("progress again: watchdog pings resumed") }
                } else if wasHealthy {
                    logger.error("no progress: watchdog pings withheld", metadata: [
                        "executor_stalled": "\(health.executorStalled)", "poll_stalled": "\(health.pollStalled)"])
                }
                wasHealthy = health.isHealthy
                let status = worker.statusLine + (health.isHealthy ? "" : " — STALLED")
                if status != lastStatus {
                    notifier.status(status)
                    lastStatus = status
                }
                Thread.sleep(forTimeInterval: Double(period.components.seconds) + Double(period.components.attoseconds) / 1e18)
            }
            done.signal()
        }
        thread.name = "universeg-watchdog"
        thread.start()
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = done.wait(timeout: .now() + 5)
    }
}
