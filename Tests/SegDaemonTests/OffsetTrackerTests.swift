import SegDaemon
import Testing

@Suite struct OffsetTrackerTests {
    let p0 = OffsetTracker.Key(topic: "t", partition: 0)
    let p1 = OffsetTracker.Key(topic: "t", partition: 1)

    @Test func outOfOrderCompletionCommitsOnlyTheDonePrefix() {
        var t = OffsetTracker()
        for o in [10, 11, 12] as [Int64] { t.started(p0, offset: o) }
        #expect(t.finished(p0, offset: 12) == nil)   // 10 and 11 still running
        #expect(t.finished(p0, offset: 10) == 10)
        #expect(t.inFlight == 2)
        #expect(t.finished(p0, offset: 11) == 12)    // 11 completes the prefix up to 12
        #expect(t.inFlight == 0)
    }

    @Test func partitionsAreIndependent() {
        var t = OffsetTracker()
        t.started(p0, offset: 1)
        t.started(p1, offset: 7)
        #expect(t.finished(p1, offset: 7) == 7)
        #expect(t.finished(p0, offset: 1) == 1)
    }

    @Test func revokedPartitionsStoreNothing() {
        var t = OffsetTracker()
        t.started(p0, offset: 3)
        t.started(p1, offset: 4)
        t.revoked([p0])
        #expect(t.finished(p0, offset: 3) == nil)
        #expect(!t.isTracked(p0) && t.isTracked(p1))
        #expect(t.inFlight == 1)
    }

    @Test func unknownOrRepeatedCompletionsAreIgnored() {
        var t = OffsetTracker()
        t.started(p0, offset: 5)
        #expect(t.finished(p0, offset: 6) == nil)
        #expect(t.finished(p0, offset: 5) == 5)
        #expect(t.finished(p0, offset: 5) == nil)
    }
}
