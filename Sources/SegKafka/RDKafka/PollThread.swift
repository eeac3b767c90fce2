internal import CRdKafka
internal import Dispatch
internal import Foundation
internal import Synchronization

/// A dedicated thread that serves a producer's queue with blocking `rd_kafka_poll` calls, so
/// delivery reports (and statistics) are handled as soon as librdkafka has them, without
/// occupying the Swift cooperative pool.
///
/// Each poll blocks at most `interval`, which bounds how long ``stop()`` waits.
final class PollThread: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let handle: RDKafkaHandle
    private let interval: Int32
    private let name: String

    init(handle: RDKafkaHandle, name: String, interval: Duration = .milliseconds(100)) {
        self.handle = handle
        self.name = name
        self.interval = max(1, milliseconds(interval))
    }

    func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            while !stopRequested.load(ordering: .acquiring) {
                _ = rd_kafka_poll(handle.pointer, interval)
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Asks the thread to stop and waits until it has left its loop. Idempotent.
    func stop() {
        guard !stopRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if started.load(ordering: .acquiring) { finished.wait() }
    }
}
