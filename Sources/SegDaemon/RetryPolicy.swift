#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Capped exponential backoff with jitter: the wait before the n-th retry of something that failed
/// n times in a row is `initial * multiplier^(n-1)`, at most `maximum`, scaled by a random factor
/// in `1 - jitter ..< 1 + jitter` so that many workers hitting one outage do not retry in step.
public struct RetryPolicy: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Relative spread of the random factor, 0 ..< 1.
    public var jitter: Double

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), multiplier: Double = 2, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The wait after `failures` consecutive failures (1 or more); `unit` is a random number in 0 ..< 1.
    public func delay(afterFailures failures: Int, unit: Double) -> Duration {
        let base = Self.seconds(initial)
        let cap = Self.seconds(maximum)
        // pow overflows to +infinity after a long outage, and min() then gives the cap.
        let raw = min(cap, base * pow(multiplier, Double(max(failures, 1) - 1)))
        let factor = 1 - jitter + 2 * jitter * min(max(unit, 0), 1)
        return .milliseconds(Int((raw * factor * 1000).rounded()))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
