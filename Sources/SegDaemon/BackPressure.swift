/// When to pause and resume the assigned partitions: pause at `highWater` requests taken and not
/// finished (queued + running) or while a dependency is down (a request waits to be retried);
/// resume at `lowWater` once nothing waits on a dependency. Resuming below the high-water mark,
/// early enough that the refetch (pausing drops librdkafka's prefetched records) arrives before
/// the executor runs dry.
public struct BackPressure: Sendable, Equatable {
    public enum Action: Sendable, Equatable { case pause, resume, none }

    public let highWater: Int
    public let lowWater: Int

    public init(maxInFlight: Int, maxQueued: Int) {
        highWater = maxInFlight + maxQueued
        lowWater = maxInFlight + maxQueued / 2
    }

    public func decide(load: Int, paused: Bool, waitingOnDependency: Bool, hasPartitions: Bool) -> Action {
        guard hasPartitions else { return .none }
        if !paused && (load >= highWater || waitingOnDependency) { return .pause }
        if paused && !waitingOnDependency && load <= lowWater { return .resume }
        return .none
    }
}
