import SegDaemon
import Testing

/// The executor's rules without Kafka: order, slots, outages in the middle of a partition,
/// revocation with work in flight, stopping during an outage.
@Suite struct RequestQueueTests {
    let p0 = OffsetTracker.Key(topic: "t", partition: 0)
    let p1 = OffsetTracker.Key(topic: "t", partition: 1)
    let t0 = ContinuousClock.now
    let policy = RetryPolicy(initial: .seconds(1), maximum: .seconds(8), multiplier: 2, jitter: 0)

    func queue(slots: Int = 1) -> RequestQueue<String> { RequestQueue(maxRunning: slots, retryPolicy: policy) }

    @Test func jobsStartInOrderUpToTheSlots() throws {
        var q = queue(slots: 2)
        for o in [10, 11, 12] as [Int64] { q.accept("r\(o)", partition: p0, offset: o, now: t0) }
        let v1 = q.next(now: t0)
        #expect(v1?.offset == 10)
        let v2 = q.next(now: t0)
        #expect(v2?.offset == 11)
        let v3 = q.next(now: t0)
        #expect(v3 == nil, "both slots are taken")
        #expect(q.load == 3 && q.running == 2 && q.inFlight == 3)
    }

    @Test func anOutageInTheMiddleOfAPartitionKeepsTheOrderAndTheOffsets() throws {
        var q = queue()
        for o in [10, 11, 12] as [Int64] { q.accept("r\(o)", partition: p0, offset: o, now: t0) }
        let v4 = q.next(now: t0)
        let a = try #require(v4)
        let v5 = q.finished(a, transient: nil, stopping: false, now: t0, unit: 0)
        #expect(v5 == .publish(cameBack: nil))
        let v6 = q.delivered(a)
        #expect(v6 == 10)

        // 11 finds the store down: it goes back before 12 and nothing starts before the retry time.
        let v7 = q.next(now: t0)
        let b = try #require(v7)
        #expect(b.offset == 11)
        let down = q.finished(b, transient: ("store", "refused"), stopping: false, now: t0, unit: 0)
        #expect(down == .retry(dependency: "store", wentDown: true, failures: 1, retryIn: .seconds(1)))
        #expect(q.isWaitingOnDependency && q.inFlight == 2)
        let v8 = q.next(now: t0 + .milliseconds(999))
        #expect(v8 == nil)
        let v9 = q.next(now: t0 + .seconds(1))
        let again = try #require(v9)
        #expect(again.offset == 11 && again.waitingOn == "store")
        let v10 = q.finished(again, transient: ("store", "HTTP 503"), stopping: false, now: t0 + .seconds(1), unit: 0)
        #expect(v10
                == .retry(dependency: "store", wentDown: false, failures: 2, retryIn: .seconds(2)))
        let v11 = q.next(now: t0 + .seconds(2))
        #expect(v11 == nil, "the backoff doubled")

        // Back: 11 publishes (the store came back after 4 s), then 12; offsets in order.
        let v12 = q.next(now: t0 + .seconds(3))
        let third = try #require(v12)
        #expect(third.offset == 11)
        let v13 = q.finished(third, transient: nil, stopping: false, now: t0 + .seconds(4), unit: 0)
        #expect(v13
                == .publish(cameBack: (dependency: "store", downFor: .seconds(4))))
        #expect(!q.isWaitingOnDependency)
        let v14 = q.next(now: t0 + .seconds(4))
        let c = try #require(v14)
        #expect(c.offset == 12)
        let v15 = q.finished(c, transient: nil, stopping: false, now: t0 + .seconds(4), unit: 0)
        #expect(v15 == .publish(cameBack: nil))
        let v16 = q.delivered(c)
        #expect(v16 == nil, "11 is not delivered yet")
        let v17 = q.delivered(third)
        #expect(v17 == 12)
        #expect(q.inFlight == 0 && q.load == 0)
    }

    @Test func revocationWithWorkInFlightDropsTheWaitingAndStoresNothingForTheRunning() throws {
        var q = queue()
        q.accept("a", partition: p0, offset: 5, now: t0)
        q.accept("b", partition: p0, offset: 6, now: t0)
        q.accept("c", partition: p1, offset: 1, now: t0)
        let v18 = q.next(now: t0)
        let running = try #require(v18)
        let v19 = q.revoke([p0])
        #expect(v19 == 1, "offset 6 was waiting")
        #expect(q.waiting.map(\.offset) == [1])
        // The running request of the revoked partition finishes: published, but no offset stored.
        let v20 = q.finished(running, transient: nil, stopping: false, now: t0, unit: 0)
        #expect(v20 == .publish(cameBack: nil))
        let v21 = q.delivered(running)
        #expect(v21 == nil)
        let v22 = q.next(now: t0)
        let other = try #require(v22)
        #expect(other.partition == p1)
        _ = q.finished(other, transient: nil, stopping: false, now: t0, unit: 0)
        let v23 = q.delivered(other)
        #expect(v23 == 1)
        #expect(q.inFlight == 0)
    }

    @Test func aTransientFailureOfARevokedPartitionIsAbandonedAndTheOutageForgotten() throws {
        var q = queue()
        q.accept("a", partition: p0, offset: 5, now: t0)
        let v24 = q.next(now: t0)
        let job = try #require(v24)
        _ = q.finished(job, transient: ("dicomweb:pacs", "refused"), stopping: false, now: t0, unit: 0)
        #expect(q.isWaitingOnDependency)
        let v25 = q.revoke([p0])
        #expect(v25 == 1)
        #expect(!q.isWaitingOnDependency, "no request waits on the PACS any more: nothing holds the executor")
        // A copy that was running when the partition went away fails again: not requeued.
        q.accept("b", partition: p1, offset: 0, now: t0)
        let v26 = q.next(now: t0)
        let b = try #require(v26)
        let v27 = q.revoke([p1])
        #expect(v27 == 0)
        let v28 = q.finished(b, transient: ("dicomweb:pacs", "refused"), stopping: false, now: t0, unit: 0)
        #expect(v28 == .abandon(dependency: "dicomweb:pacs"))
        #expect(q.load == 0 && q.inFlight == 0)
    }

    @Test func stoppingDuringAnOutageLeavesTheWaitingRequestsUncommitted() throws {
        var q = queue()
        for o in [1, 2, 3] as [Int64] { q.accept("r", partition: p0, offset: o, now: t0) }
        let v29 = q.next(now: t0)
        let first = try #require(v29)
        _ = q.finished(first, transient: ("store", "refused"), stopping: false, now: t0, unit: 0)
        let v30 = q.dropWaitingForShutdown()
        #expect(v30 == 3)
        #expect(q.inFlight == 0 && q.load == 0 && !q.isWaitingOnDependency)
        // A request running when the stop came fails transiently: abandoned, not requeued.
        q.accept("late", partition: p1, offset: 9, now: t0)
        let v31 = q.next(now: t0)
        let late = try #require(v31)
        let v32 = q.finished(late, transient: ("store", "refused"), stopping: true, now: t0, unit: 0)
        #expect(v32 == .abandon(dependency: "store"))
        #expect(q.inFlight == 0 && q.load == 0)
    }

    @Test func withoutAnOutageNothingIsDroppedAtShutdown() {
        var q = queue()
        q.accept("r", partition: p0, offset: 1, now: t0)
        let v33 = q.dropWaitingForShutdown()
        #expect(v33 == 0)
        #expect(q.load == 1)
    }

    @Test func skippedOffsetsMoveTheStoredOffsetInOrder() throws {
        var q = queue()
        q.accept("r", partition: p0, offset: 1, now: t0)
        let v34 = q.skip(partition: p0, offset: 2)
        #expect(v34 == nil, "1 is still pending")
        let v35 = q.next(now: t0)
        let job = try #require(v35)
        _ = q.finished(job, transient: nil, stopping: false, now: t0, unit: 0)
        let v36 = q.delivered(job)
        #expect(v36 == 2)
    }
}
