import Foundation
import SegDICOMweb
import SegTesting
import Testing

/// The fixtures, made once per test process: a 5-slice CT series (4 uploaded by the tests, the
/// 5th stored over STOW-RS) and a 1-slice series of another study.
enum Fixture {
    static let study = "1.2.826.0.1.3680043.8.498.770001"
    static let series = "1.2.826.0.1.3680043.8.498.770001.1"
    static let otherStudy = "1.2.826.0.1.3680043.8.498.770002"
    static let otherSeries = "1.2.826.0.1.3680043.8.498.770002.1"

    static let made: Result<(ct: [DICOMFixtures.Instance], other: [DICOMFixtures.Instance]), any Error> = Result {
        (try DICOMFixtures.ctSeries(study: study, series: series, count: 5),
         try DICOMFixtures.ctSeries(study: otherStudy, series: otherSeries, count: 1))
    }

    static var canRun: Bool { OrthancServer.isAvailable && DICOMFixtures.skipReason == nil }

    /// The fixtures (made off the Swift pool the first time).
    static func get() async throws -> (ct: [DICOMFixtures.Instance], other: [DICOMFixtures.Instance]) {
        try await onThread { try made.get() }
    }
}

/// SegDICOMweb against a real PACS: Orthanc 1.10 with its DICOMweb plugin, one per test
/// (skipped where /usr/sbin/Orthanc or python3 with pydicom is missing).
@Suite(.enabled(if: Fixture.canRun, "needs /usr/sbin/Orthanc with the DICOMweb plugin and python3 with pydicom and numpy"))
struct OrthancDICOMwebTests {
    private func client(_ orthanc: OrthancServer, timeout: Double = 10) -> DICOMwebClient {
        DICOMwebClient(server: DICOMwebServer(name: "orthanc-it", baseURL: orthanc.dicomWebURL, timeoutSeconds: timeout))
    }


    /// Starts Orthanc and uploads the first 4 CT slices through its REST API.
    private func startWithSeries() async throws -> (OrthancServer, [DICOMFixtures.Instance]) {
        let fixtures = try await Fixture.get()
        let orthanc = try await OrthancServer.start()
        do {
            let slices = Array(fixtures.ct.prefix(4))
            try await onThread { for slice in slices { try orthanc.upload(slice.bytes) } }
            return (orthanc, slices)
        } catch {
            orthanc.stop()
            throw error
        }
    }

    private static func median(_ samples: [Duration]) -> Duration { samples.sorted()[samples.count / 2] }

    private static func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.2f ms", ms)
    }

    @Test func listsAndRetrievesTheUploadedSeriesByteForByte() async throws {
        let (orthanc, slices) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc)
        let (uids, retrieved, qidoTimes, wadoTimes) = try await onThread {
            let clock = ContinuousClock()
            var qidoTimes: [Duration] = []
            var uids: [String] = []
            for _ in 0..<5 {
                let start = clock.now
                uids = try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 100)
                qidoTimes.append(clock.now - start)
            }
            var wadoTimes: [Duration] = []
            var retrieved: [String: [UInt8]] = [:]
            for uid in uids {
                let start = clock.now
                retrieved[uid] = try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: uid, maxBytes: 1 << 20)
                wadoTimes.append(clock.now - start)
            }
            return (uids, retrieved, qidoTimes, wadoTimes)
        }
        #expect(Set(uids) == Set(slices.map(\.sopInstanceUID)))
        #expect(uids.count == 4)
        for slice in slices {
            #expect(retrieved[slice.sopInstanceUID] == slice.bytes, "instance \(slice.sopInstanceUID) differs")
        }
        // Exactly the limit is fine; one fewer is too many instances.
        #expect(try await onThread { try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 4) }.count == 4)
        let overLimit = try await onThread {
            fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 3) }
        }
        #expect(overLimit?.kind == .tooLarge)
        print("latency on loopback, median: QIDO-RS instances of a 4-instance series \(Self.milliseconds(Self.median(qidoTimes))), "
            + "WADO-RS instance (9 KB) \(Self.milliseconds(Self.median(wadoTimes))); samples \(qidoTimes.map(Self.milliseconds)) \(wadoTimes.map(Self.milliseconds))")
    }

    @Test func storeANewInstanceThenQIDOFindsItAndWADOReturnsIt() async throws {
        let fixtures = try await Fixture.get()
        let (orthanc, _) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc)
        let new = fixtures.ct[4]
        let (receipt, stowTimes) = try await onThread {
            let clock = ContinuousClock()
            var start = clock.now
            let receipt = try dicomweb.store(study: Fixture.study, instance: new.bytes)
            var times = [clock.now - start]
            // Storing the same instance again succeeds too (Orthanc keeps the first copy).
            for _ in 0..<4 {
                start = clock.now
                _ = try dicomweb.store(study: Fixture.study, instance: new.bytes)
                times.append(clock.now - start)
            }
            return (receipt, times)
        }
        #expect(receipt.sopInstanceUID == new.sopInstanceUID)
        let retrieveURL = try #require(receipt.retrieveURL)
        #expect(retrieveURL.hasPrefix(orthanc.dicomWebURL.absoluteString + "/studies/\(Fixture.study)"))
        #expect(retrieveURL.hasSuffix("/instances/\(new.sopInstanceUID)"))
        let uids = try await onThread { try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 100) }
        #expect(uids.count == 5)
        #expect(uids.contains(new.sopInstanceUID))
        let back = try await onThread {
            try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: new.sopInstanceUID, maxBytes: 1 << 20)
        }
        #expect(back == new.bytes)
        #expect(orthanc.instanceCount == 5)
        print("latency on loopback, median: STOW-RS one 9 KB instance \(Self.milliseconds(Self.median(stowTimes)))")
    }

    /// What Orthanc 1.10.1 with DICOMweb 1.7 answers (observed):
    /// - random bytes as the part: HTTP 400, no Content-Type, a dicom+json body whose
    ///   FailedSOPSequence and ReferencedSOPSequence are both empty -> `.badRequest`;
    /// - an instance whose StudyInstanceUID differs from the URL's study: HTTP 409 with one
    ///   FailedSOPSequence item, FailureReason 272 (0x0110, processing failure) -> `.rejected`.
    /// Neither is stored.
    @Test func storeOfSomethingOrthancRefuses() async throws {
        let fixtures = try await Fixture.get()
        let orthanc = try await OrthancServer.start()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc)
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let garbageError = try await onThread { fails { () throws(DICOMwebError) in try dicomweb.store(study: Fixture.study, instance: garbage) } }
        #expect(garbageError?.kind == .badRequest, "\(String(describing: garbageError))")
        #expect(garbageError?.message.contains("HTTP 400") == true)
        let other = fixtures.other[0]
        let wrongStudy = try await onThread { fails { () throws(DICOMwebError) in try dicomweb.store(study: Fixture.study, instance: other.bytes) } }
        #expect(wrongStudy?.kind == .rejected, "\(String(describing: wrongStudy))")
        #expect(wrongStudy?.message.contains("HTTP 409") == true)
        #expect(wrongStudy?.message.contains("FailureReason 272") == true)
        #expect(wrongStudy?.isTransient == false)
        #expect(orthanc.instanceCount == 0)
        // The same instance is accepted under its own study.
        let receipt = try await onThread { try dicomweb.store(study: Fixture.otherStudy, instance: other.bytes) }
        #expect(receipt.sopInstanceUID == other.sopInstanceUID)
        #expect(orthanc.instanceCount == 1)
    }

    @Test func unknownStudyOrSeriesIsNotFound() async throws {
        let (orthanc, slices) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc)
        let errors = try await onThread {
            [
                // Orthanc answers QIDO with 200 and [] for these.
                fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: "1.2.3.4", series: "1.2.3.4.5", limit: 10) },
                fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: Fixture.study, series: "1.2.3.4.5", limit: 10) },
                // And WADO-RS with 404.
                fails { () throws(DICOMwebError) in
                    try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: "1.2.3.4.5.6", maxBytes: 1 << 20)
                },
                fails { () throws(DICOMwebError) in
                    try dicomweb.retrieveInstance(study: "1.2.3.4", series: "1.2.3.4.5", instance: slices[0].sopInstanceUID, maxBytes: 1 << 20)
                },
            ]
        }
        #expect(errors.map { $0?.kind } == [.notFound, .notFound, .notFound, .notFound])
        #expect(errors.allSatisfy { $0?.isTransient == false })
    }

    @Test func instanceLargerThanTheBoundIsTooLarge() async throws {
        let (orthanc, slices) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc)
        let size = slices[0].bytes.count
        let (below, exact) = try await onThread {
            (fails { () throws(DICOMwebError) in
                try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[0].sopInstanceUID, maxBytes: size - 1)
            },
            try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[0].sopInstanceUID, maxBytes: size))
        }
        #expect(below?.kind == .tooLarge)
        #expect(below?.isTransient == false)
        #expect(exact == slices[0].bytes)
        // Far below: the HTTP layer cuts the transfer (declared Content-Length above the bound).
        let tiny = try await onThread {
            fails { () throws(DICOMwebError) in
                try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[0].sopInstanceUID, maxBytes: 0)
            }
        }
        #expect(tiny?.kind == .tooLarge)
    }

    @Test func killedOrthancIsUnavailableAndWorksAgainAfterRestart() async throws {
        let (orthanc, slices) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc, timeout: 5)
        orthanc.kill()
        let errors = try await onThread {
            [
                fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 10) },
                fails { () throws(DICOMwebError) in
                    try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[0].sopInstanceUID, maxBytes: 1 << 20)
                },
                fails { () throws(DICOMwebError) in try dicomweb.store(study: Fixture.study, instance: slices[0].bytes) },
            ]
        }
        #expect(errors.map { $0?.kind } == [.unavailable, .unavailable, .unavailable])
        #expect(errors.allSatisfy { $0?.isTransient == true })
        #expect(errors.allSatisfy { $0?.message.hasPrefix("orthanc-it: ") == true })
        try await onThread { try orthanc.restart() }
        // The same client (same URL) works again, with the data stored before the outage.
        let uids = try await onThread { try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 10) }
        #expect(Set(uids) == Set(slices.map(\.sopInstanceUID)))
        let back = try await onThread {
            try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[1].sopInstanceUID, maxBytes: 1 << 20)
        }
        #expect(back == slices[1].bytes)
    }

    @Test func hungOrthancTimesOutAsUnavailableAndRecovers() async throws {
        let (orthanc, slices) = try await startWithSeries()
        defer { orthanc.stop() }
        let dicomweb = client(orthanc, timeout: 0.5)
        orthanc.suspend()
        let clock = ContinuousClock()
        let start = clock.now
        let errors = try await onThread {
            [
                fails { () throws(DICOMwebError) in try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 10) },
                fails { () throws(DICOMwebError) in
                    try dicomweb.retrieveInstance(study: Fixture.study, series: Fixture.series, instance: slices[0].sopInstanceUID, maxBytes: 1 << 20)
                },
            ]
        }
        let elapsed = clock.now - start
        orthanc.resume()
        #expect(errors.map { $0?.kind } == [.unavailable, .unavailable])
        #expect(errors.allSatisfy { $0?.message.contains("no complete response within 0.5 s") == true }, "\(errors)")
        // Only a guard against hanging (no answer at all would block for ever); not a speed test.
        #expect(elapsed < .seconds(30), "two 0.5 s time-outs took \(elapsed)")
        // The same client works again once Orthanc has caught up. Its 0.5 s deadline can still be
        // missed right after SIGCONT on a busy machine, so the check retries for up to 30 s: the
        // assertion is about recovery, not speed.
        let uids = try await onThread { () -> [String] in
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                do {
                    return try dicomweb.instanceUIDs(study: Fixture.study, series: Fixture.series, limit: 10)
                } catch let error as DICOMwebError where error.kind == .unavailable && ContinuousClock.now < deadline {
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
        }
        #expect(uids.count == 4)
    }
}
