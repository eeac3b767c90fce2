import SegDaemon
import SegKafka
import Testing

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(initial: .milliseconds(500), maximum: .seconds(30), multiplier: 2, jitter: 0.2)

    @Test func delaysDoubleUpToTheCap() {
        // unit 0.5 is the middle of the jitter range: factor 1.
        let delays = (1...10).map { policy.delay(afterFailures: $0, unit: 0.5) }
        #expect(delays.prefix(7) == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30)])
        #expect(delays.dropFirst(6).allSatisfy { $0 == .seconds(30) })
    }

    @Test func jitterStaysWithinItsBand() {
        #expect(policy.delay(afterFailures: 3, unit: 0) == .milliseconds(1600))
        #expect(policy.delay(afterFailures: 3, unit: 0.999_999) == .milliseconds(2400))
        #expect(policy.delay(afterFailures: 100, unit: 0) == .seconds(24))
        #expect(policy.delay(afterFailures: 100, unit: 1) == .seconds(36))
    }

    @Test func aVeryLongOutageDoesNotOverflow() {
        #expect(policy.delay(afterFailures: Int.max, unit: 0.5) == .seconds(30))
        #expect(policy.delay(afterFailures: 0, unit: 0.5) == .milliseconds(500))
    }
}

@Suite struct DependencyGateTests {
    let t0 = ContinuousClock.now
    let policy = RetryPolicy(initial: .seconds(1), maximum: .seconds(8), multiplier: 2, jitter: 0)

    @Test func aFailureHoldsTheExecutorUntilTheRetryTime() {
        var gate = DependencyGate(policy: policy)
        #expect(gate.mayStart(now: t0))
        let (change, wait) = gate.failed("store", reason: "refused", now: t0, unit: 0.5)
        #expect(change == .wentDown && wait == .seconds(1))
        #expect(gate.isAnyDown)
        #expect(!gate.mayStart(now: t0 + .milliseconds(999)))
        #expect(gate.mayStart(now: t0 + .seconds(1)))
    }

    @Test func repeatedFailuresBackOffAndRecoveryReportsTheDowntime() {
        var gate = DependencyGate(policy: policy)
        _ = gate.failed("store", reason: "refused", now: t0, unit: 0)
        let second = gate.failed("store", reason: "HTTP 503", now: t0 + .seconds(1), unit: 0)
        #expect(second.change == .stillDown(failures: 2) && second.retryIn == .seconds(2))
        let third = gate.failed("store", reason: "HTTP 503", now: t0 + .seconds(3), unit: 0)
        #expect(third.retryIn == .seconds(4))
        #expect(gate.down["store"]?.reason == "HTTP 503")
        #expect(gate.succeeded("store", now: t0 + .seconds(8)) == .cameBack(downFor: .seconds(8)))
        #expect(!gate.isAnyDown && gate.mayStart(now: t0 + .seconds(8)))
        // A success of something that was never down changes nothing.
        #expect(gate.succeeded("store", now: t0 + .seconds(9)) == .none)
    }

    @Test func anOutageOfOneServerDoesNotEndWhenAnotherComesBack() {
        var gate = DependencyGate(policy: policy)
        _ = gate.failed("store", reason: "x", now: t0, unit: 0)
        _ = gate.failed("dicomweb:pacs", reason: "x", now: t0, unit: 0)
        #expect(gate.succeeded("store", now: t0 + .seconds(2)) == .cameBack(downFor: .seconds(2)))
        #expect(gate.isAnyDown)
        #expect(gate.down.keys.sorted() == ["dicomweb:pacs"])
    }

    @Test func aLaterFailureNeverMovesTheRetryEarlier() {
        var gate = DependencyGate(policy: policy)
        _ = gate.failed("a", reason: "x", now: t0, unit: 0)
        _ = gate.failed("a", reason: "x", now: t0, unit: 0)
        _ = gate.failed("a", reason: "x", now: t0, unit: 0)  // retry at t0 + 4 s
        _ = gate.failed("b", reason: "x", now: t0, unit: 0)  // would be t0 + 1 s
        #expect(gate.retryAt == t0 + .seconds(4))
    }

    @Test func forgettingTheLastOutageLiftsTheHold() {
        var gate = DependencyGate(policy: policy)
        _ = gate.failed("store", reason: "x", now: t0, unit: 0)
        gate.forget("store")
        #expect(!gate.isAnyDown && gate.mayStart(now: t0) && gate.retryAt == nil)
    }
}

@Suite struct BackPressureTests {
    let policy = BackPressure(maxInFlight: 2, maxQueued: 8)  // pause at 10, resume at 6

    @Test func pausesAtTheHighWaterMarkAndResumesAtTheLowOne() {
        #expect(policy.decide(load: 9, paused: false, waitingOnDependency: false, hasPartitions: true) == .none)
        #expect(policy.decide(load: 10, paused: false, waitingOnDependency: false, hasPartitions: true) == .pause)
        #expect(policy.decide(load: 7, paused: true, waitingOnDependency: false, hasPartitions: true) == .none)
        #expect(policy.decide(load: 6, paused: true, waitingOnDependency: false, hasPartitions: true) == .resume)
    }

    @Test func aDependencyOutagePausesWhateverTheLoad() {
        #expect(policy.decide(load: 1, paused: false, waitingOnDependency: true, hasPartitions: true) == .pause)
        #expect(policy.decide(load: 0, paused: true, waitingOnDependency: true, hasPartitions: true) == .none)
        #expect(policy.decide(load: 1, paused: true, waitingOnDependency: false, hasPartitions: true) == .resume)
    }

    @Test func nothingToPauseWithoutPartitions() {
        #expect(policy.decide(load: 100, paused: false, waitingOnDependency: true, hasPartitions: false) == .none)
    }
}

@Suite struct DeliveryPolicyTests {
    let policy = DeliveryPolicy(attempts: 3, pause: .milliseconds(500))

    @Test func retriableErrorsAreRetriedUpToTheAttemptsFatalOnesStop() {
        let timedOut = KafkaError(.messageTimedOut, "x", isRetriable: true)
        #expect(policy.decide(timedOut, attempt: 1) == .retry(after: .milliseconds(500)))
        #expect(policy.decide(timedOut, attempt: 2) == .retry(after: .milliseconds(500)))
        #expect(policy.decide(timedOut, attempt: 3) == .fail)
        #expect(policy.decide(KafkaError(.queueFull, "x", isRetriable: false), attempt: 1) == .retry(after: .milliseconds(500)))
        #expect(policy.decide(KafkaError(.fatal, "x", isFatal: true, isRetriable: true), attempt: 1) == .fatal)
        // MSG_SIZE_TOO_LARGE and the like: not retriable, no point in sending again.
        #expect(policy.decide(KafkaError(.invalidArgument, "x", isRetriable: false), attempt: 1) == .fail)
    }
}
