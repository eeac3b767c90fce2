/// Which records a replay reprocesses: those whose timestamp lies in `from...to`. A record older
/// than `from` is skipped (its offset still moves on); the first record newer than `to` ends the
/// partition's range (records produced after the replay started are not replayed). A record
/// without a timestamp is reprocessed.
public struct ReplayFilter: Sendable, Equatable {
    public enum Decision: Sendable, Equatable { case process, skip, endOfRange }

    public let fromMilliseconds: Int64
    public let toMilliseconds: Int64

    public init(fromMilliseconds: Int64, toMilliseconds: Int64) {
        self.fromMilliseconds = fromMilliseconds
        self.toMilliseconds = toMilliseconds
    }

    public func decide(timestampMilliseconds time: Int64?) -> Decision {
        guard let time else { return .process }
        if time > toMilliseconds { return .endOfRange }
        if time < fromMilliseconds { return .skip }
        return .process
    }
}
