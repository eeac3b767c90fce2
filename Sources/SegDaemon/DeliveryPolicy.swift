public import SegKafka

/// What to do when producing a record failed, following librdkafka's flags: a fatal error stops
/// the worker (nothing more is stored; systemd restarts it); a retriable error (or a full local
/// queue) is tried again after a pause, up to `attempts` sends in all; anything else fails the
/// request's delivery, which also stops the worker with nothing stored (the request is redelivered).
public struct DeliveryPolicy: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case fail
        case fatal
    }

    public var attempts: Int
    public var pause: Duration

    public init(attempts: Int = 5, pause: Duration = .milliseconds(500)) {
        self.attempts = attempts
        self.pause = pause
    }

    /// `attempt` is the number of the send that failed (1 for the first).
    public func decide(_ error: KafkaError, attempt: Int) -> Decision {
        if error.isFatal { return .fatal }
        guard error.isRetriable || error.code == .queueFull, attempt < attempts else { return .fail }
        return .retry(after: pause)
    }
}
