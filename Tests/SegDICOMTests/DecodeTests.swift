import Foundation
import SegDICOM
import Testing

/// Decoding against the formulas of Scripts/make_dicom_fixtures.py.
@Suite(.enabled(if: Tools.fixturesAvailable, "needs python3 with pydicom/highdicom/numpy and DCMTK's command-line tools"))
struct DecodeTests {
    @Test func dcmtkVersionIs367() { #expect(DCMTK.version == "3.6.7") }

    @Test func ctSlicesHaveFormulaValuesWithRescaleAndGeometry() throws {
        for k in 0..<4 {
            let ct = try Fixtures.instance("ct_\(k).dcm")
            #expect(ct.sopClassUID == "1.2.840.10008.5.1.4.1.1.2")
            #expect(ct.transferSyntaxUID == "1.2.840.10008.1.2.1")
            #expect(ct.modality == "CT")
            #expect(ct.frameOfReferenceUID != nil)
            #expect(ct.rows == 128 && ct.columns == 128 && ct.numberOfFrames == 1)
            #expect(ct.instanceNumber == 4 - k)
            #expect(ct.imageOrientationPatient == [1, 0, 0, 0, 1, 0])
            #expect(ct.imagePositions == [[-64, -64, -10 + 2.5 * Double(k)]])
            #expect(ct.pixelSpacing == [0.8, 0.8])
            #expect(ct.sliceThickness == 2.5)
            #expect(ct.isSigned && ct.bitsStored == 16)
            let values = try ct.frame(0)
            #expect(values == ctExpected(size: 128, slice: k))
        }
    }

    @Test func uncompressedVariantsAndLosslessCodecsEqualTheOriginal() throws {
        let reference = ctExpected(size: 128, slice: 0)
        let variants = [
            ("ct_0_implicit.dcm", "1.2.840.10008.1.2"), ("ct_0_bigendian.dcm", "1.2.840.10008.1.2.2"),
            ("ct_0_rle.dcm", "1.2.840.10008.1.2.5"), ("ct_0_jpegll.dcm", "1.2.840.10008.1.2.4.70"),
            ("ct_0_jpegls.dcm", "1.2.840.10008.1.2.4.80"),
        ]
        for (name, syntax) in variants {
            let instance = try Fixtures.instance(name)
            #expect(instance.transferSyntaxUID == syntax, "\(name)")
            let values = try instance.frame(0)
            #expect(values == reference, "\(name): max difference \(maxAbsDifference(values, reference))")
        }
    }

    @Test func unsignedBitsStoredMasksTheUnusedHighBits() throws {
        let values = try Fixtures.instance("mr12.dcm").frame(0)
        #expect(values == grid(rows: 64, columns: 64) { r, c in Double((5 * r + 3 * c) % 4096) })
    }

    @Test func signedBitsStoredIsSignExtended() throws {
        let instance = try Fixtures.instance("signed12.dcm")
        #expect(instance.isSigned && instance.bitsStored == 12)
        let values = try instance.frame(0)
        #expect(values == grid(rows: 64, columns: 64) { r, c in Double((5 * r + 3 * c) % 4096 - 2048) })
    }

    @Test func highBitAboveBitsStoredShiftsTheSamples() throws {
        let values = try Fixtures.instance("shifted.dcm").frame(0)
        #expect(values == grid(rows: 64, columns: 64) { r, c in Double((5 * r + 3 * c) % 4096) })
    }

    @Test func monochrome1IsInvertedWithinTheStoredRange() throws {
        let instance = try Fixtures.instance("mono1.dcm")
        #expect(instance.photometricInterpretation == "MONOCHROME1")
        let values = try instance.frame(0)
        #expect(values == grid(rows: 64, columns: 64) { r, c in Double(1023 - (3 * r + c) % 1024) })
    }

    @Test func eightBitUltrasoundAndItsJPEGBaselineVersion() throws {
        let expected = grid(rows: 128, columns: 96) { r, c in Double((r + 2 * c) % 256) }
        let us = try Fixtures.instance("us.dcm")
        #expect(us.frameOfReferenceUID == nil && us.imagePositions == [nil] && us.modality == "US")
        #expect(try us.frame(0) == expected)
        let jpeg = try Fixtures.instance("us_jpeg.dcm")
        #expect(jpeg.transferSyntaxUID == "1.2.840.10008.1.2.4.50")
        let lossy = try jpeg.frame(0)
        // The formula wraps at 256 (sharp edges), so baseline JPEG rings there; on average it stays close.
        #expect(meanAbsDifference(lossy, expected) < 4, "mean \(meanAbsDifference(lossy, expected))")
    }

    @Test func twelveBitJPEGExtendedIsClose() throws {
        let expected = grid(rows: 64, columns: 64) { r, c in Double((5 * r + 3 * c) % 4096) }
        let jpeg = try Fixtures.instance("mr12_jpegext.dcm")
        #expect(jpeg.transferSyntaxUID == "1.2.840.10008.1.2.4.51")
        let values = try jpeg.frame(0)
        #expect(meanAbsDifference(values, expected) < 40, "mean \(meanAbsDifference(values, expected))")
        #expect(values.allSatisfy { $0 >= 0 && $0 < 4096 })
    }

    @Test func rgbBecomesLuminanceInBothPlanarConfigurations() throws {
        let expected = grid(rows: 64, columns: 64) { r, c in
            0.299 * Double((4 * r) % 256) + 0.587 * Double((4 * c) % 256) + 0.114 * Double((2 * r + 2 * c) % 256)
        }
        for name in ["rgb.dcm", "rgb_planar.dcm", "rgb_rle.dcm"] {
            let values = try Fixtures.instance(name).frame(0)
            #expect(maxAbsDifference(values, expected) < 1e-3, "\(name): \(maxAbsDifference(values, expected))")
        }
        let jpeg = try Fixtures.instance("rgb_jpeg.dcm").frame(0)
        #expect(meanAbsDifference(jpeg, expected) < 4, "JPEG: mean \(meanAbsDifference(jpeg, expected))")
    }

    @Test func ybrFullAndNative422GiveTheLumaChannel() throws {
        let expected = grid(rows: 64, columns: 64) { r, c in Double((r + 3 * c) % 256) }
        #expect(try Fixtures.instance("ybr_full.dcm").frame(0) == expected)
        #expect(try Fixtures.instance("ybr_422.dcm").frame(0) == expected)
    }

    @Test func multiFrameWithFunctionalGroups() throws {
        for name in ["multiframe.dcm", "multiframe_rle.dcm"] {
            let instance = try Fixtures.instance(name)
            #expect(instance.numberOfFrames == 3 && instance.rows == 32 && instance.columns == 48)
            #expect(instance.imageOrientationPatient == [1, 0, 0, 0, 1, 0])
            #expect(instance.pixelSpacing == [0.5, 0.5])
            #expect(instance.imagePositions == [[0, 0, 0], [0, 0, 5], [0, 0, 10]])
            for f in 0..<3 {
                let expected = grid(rows: 32, columns: 48) { r, c in Double((r + 2 * c + 100 * f) % 1000 - 500) * 2 - 50 }
                #expect(try instance.frame(f) == expected, "\(name) frame \(f)")
            }
            #expect(dicomError { _ = try instance.frame(3) }?.kind == .invalid)
            #expect(dicomError { _ = try instance.frame(-1) }?.kind == .invalid)
        }
    }

    @Test func jpeg2000IsUnsupported() throws {
        let error = dicomError { _ = try Fixtures.instance("j2k.dcm") }
        #expect(error?.kind == .unsupported)
        #expect(error?.message.contains("JPEG 2000") == true, "\(String(describing: error))")
    }

    /// (file under bad/, expected kind)
    static let badInputs: [(String, DICOMError.Kind)] = [
        ("empty.dcm", .invalid), ("garbage.dcm", .invalid), ("truncated_half.dcm", .invalid),
        ("truncated_header.dcm", .invalid), ("preamble_only.dcm", .invalid), ("bomb_dimensions.dcm", .tooLarge),
        ("bomb_short_pixeldata.dcm", .tooLarge), ("bomb_frame_count.dcm", .tooLarge), ("no_pixeldata.dcm", .invalid),
        ("no_sop_instance_uid.dcm", .invalid), ("no_study_uid.dcm", .invalid), ("no_rows.dcm", .invalid),
        ("bits_stored_too_large.dcm", .invalid), ("frames_zero.dcm", .invalid), ("palette.dcm", .unsupported),
        ("bits_allocated_1.dcm", .unsupported), ("sr.dcm", .unsupported), ("pixeldata_length_too_long.dcm", .invalid),
        ("rle_missing_fragments.dcm", .invalid), ("rle_corrupt.dcm", .invalid), ("rle_offset_outside.dcm", .invalid),
        ("rle_segment_count.dcm", .invalid), ("rle_empty_segment.dcm", .invalid), ("rle_short_header.dcm", .invalid),
        ("rle_split_frame.dcm", .invalid),
    ]

    @Test(arguments: badInputs.map(\.0))
    func badInputGivesTheRightKind(_ name: String) throws {
        let expected = try #require(Self.badInputs.first { $0.0 == name }?.1)
        let bytes = try Fixtures.bytes("bad/" + name)
        // Parsing or, for damage inside a compressed frame, decoding must fail; nothing may crash.
        let error = dicomError {
            let instance = try DICOMInstance.parse(bytes, limits: DICOMLimits())
            for f in 0..<instance.numberOfFrames { _ = try instance.frame(f) }
        }
        #expect(error?.kind == expected, "\(name): \(String(describing: error))")
        // Messages go to logs: no patient data from the fixture (name, ID, birth date).
        for secret in ["Fixture^Synthetic", "FIXTURE-0001", "19700101"] {
            #expect(error?.message.contains(secret) != true)
        }
    }

    @Test func limitsAreEnforcedBeforeDecoding() throws {
        var small = DICOMLimits()
        small.maxInstanceBytes = 1000
        #expect(dicomError { _ = try Fixtures.instance("ct_0.dcm", limits: small) }?.kind == .tooLarge)
        small = DICOMLimits()
        small.maxRows = 64
        #expect(dicomError { _ = try Fixtures.instance("ct_0.dcm", limits: small) }?.kind == .tooLarge)
        small = DICOMLimits()
        small.maxColumns = 64
        #expect(dicomError { _ = try Fixtures.instance("ct_0.dcm", limits: small) }?.kind == .tooLarge)
        small = DICOMLimits()
        small.maxPixelsPerFrame = 128 * 128 - 1
        #expect(dicomError { _ = try Fixtures.instance("ct_0.dcm", limits: small) }?.kind == .tooLarge)
        small = DICOMLimits()
        small.maxFrames = 2
        #expect(dicomError { _ = try Fixtures.instance("multiframe.dcm", limits: small) }?.kind == .tooLarge)
        #expect(DICOMError.Kind.tooLarge.code == "dicom_too_large")
    }

    @Test func concurrentFrameAccessOnOneInstance() async throws {
        let instance = try Fixtures.instance("multiframe_rle.dcm")
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<12 {
                group.addTask {
                    let f = i % 3
                    let expected = grid(rows: 32, columns: 48) { r, c in Double((r + 2 * c + 100 * f) % 1000 - 500) * 2 - 50 }
                    return (try? instance.frame(f)) == expected
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 12 && results.allSatisfy { $0 })
    }

    @Test func concurrentParsingAndDecodingOfDifferentFiles() async throws {
        let names = ["ct_0.dcm", "ct_0_rle.dcm", "ct_0_jpegll.dcm", "ct_0_jpegls.dcm", "ct_0_bigendian.dcm", "ct_0_implicit.dcm"]
        let files = try names.map { try Fixtures.bytes($0) }
        let expected = ctExpected(size: 128, slice: 0)
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<24 {
                let bytes = files[i % files.count]
                group.addTask {
                    guard let instance = try? DICOMInstance.parse(bytes, limits: DICOMLimits()) else { return false }
                    return (try? instance.frame(0)) == expected
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 24 && results.allSatisfy { $0 })
    }

    @Test func decodeTimingOf512x512CT() throws {
        let bytes = try Fixtures.bytes("ct512.dcm")
        let expected = ctExpected(size: 512, slice: 0)
        var best = Double.infinity
        for _ in 0..<5 {
            let start = ContinuousClock.now
            let instance = try DICOMInstance.parse(bytes, limits: DICOMLimits())
            let values = try instance.frame(0)
            let elapsed = ContinuousClock.now - start
            best = min(best, Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
            #expect(values == expected)
        }
        // A figure for the log, not an assertion: no test depends on the machine's speed.
        print("decode 512x512 CT (parse + frame): best of 5 \(String(format: "%.2f", best)) ms")
    }
}

struct WindowAndOrderTests {
    @Test func linearVOIWindow() {
        let window = DICOMWindow(center: 40, width: 400)
        // Bounds: x <= c - 0.5 - (w-1)/2 = -160 -> 0; x > c - 0.5 + (w-1)/2 = 239 -> 1.
        let out = window.apply([-1000, -160, -159, 39.5, 239, 240])
        #expect(out[0] == 0 && out[1] == 0 && out[5] == 1)
        #expect(abs(out[2] - Float((-159 - 39.5) / 399 + 0.5)) < 1e-6)
        #expect(abs(out[3] - 0.5) < 1e-6)
        #expect(abs(out[4] - Float((239 - 39.5) / 399 + 0.5)) < 1e-6)
        #expect(DICOMWindow(center: 10, width: 1).apply([9, 9.5, 10]) == [0, 0, 1])
    }

    typealias Slice = SliceOrder.Slice
    static let axial: [Double] = [1, 0, 0, 0, 1, 0]

    @Test func positionsWinOverShuffledInstanceNumbers() {
        let zs: [Double] = [5, -5, 0, 10]
        let slices = zs.enumerated().map { i, z in Slice(position: [1, 2, z], orientation: Self.axial, instanceNumber: [3, 9, 1, 2][i]) }
        #expect(SliceOrder.order(slices) == [1, 2, 0, 3])
    }

    @Test func obliqueOrientationSortsAlongTheNormal() {
        // Rows along x, columns along (0, cos, sin): the normal is (0, -sin, cos).
        let angle = 0.5
        let orientation = [1, 0, 0, 0, cos(angle), sin(angle)]
        let normal = [0, -sin(angle), cos(angle)]
        let distances: [Double] = [3, -1, 7, 0]
        // Positions along the normal plus an in-plane offset that would mislead a sort by z alone.
        let slices = distances.enumerated().map { i, d in
            Slice(
                position: [0, normal[1] * d + cos(angle) * Double(10 * i), normal[2] * d + sin(angle) * Double(10 * i)],
                orientation: orientation, instanceNumber: i + 1)
        }
        #expect(SliceOrder.order(slices) == [1, 3, 0, 2])
        let byZ = slices.indices.sorted { slices[$0].position![2] < slices[$1].position![2] }
        #expect(byZ != [1, 3, 0, 2])
    }

    @Test func fallsBackToInstanceNumberWithMissingLastAndStableTies() {
        // One slice without a position: InstanceNumber order, missing numbers last, ties in input order.
        let slices = [
            Slice(position: [0, 0, 1], orientation: Self.axial, instanceNumber: 2),
            Slice(position: nil, orientation: Self.axial, instanceNumber: nil),
            Slice(position: [0, 0, 3], orientation: Self.axial, instanceNumber: 1),
            Slice(position: [0, 0, 0], orientation: Self.axial, instanceNumber: 2),
            Slice(position: [0, 0, 2], orientation: Self.axial, instanceNumber: nil),
        ]
        #expect(SliceOrder.order(slices) == [2, 0, 3, 1, 4])
        // Different orientations: InstanceNumber too.
        let mixed = [
            Slice(position: [0, 0, 0], orientation: Self.axial, instanceNumber: 2),
            Slice(position: [0, 0, 1], orientation: [1, 0, 0, 0, 0, -1], instanceNumber: 1),
        ]
        #expect(SliceOrder.order(mixed) == [1, 0])
        // Equal positions keep input order.
        let same = (0..<3).map { _ in Slice(position: [0, 0, 0], orientation: Self.axial, instanceNumber: nil) }
        #expect(SliceOrder.order(same) == [0, 1, 2])
        #expect(SliceOrder.order([]) == [])
    }

    @Test(.enabled(if: Tools.fixturesAvailable, "needs python3 with pydicom/highdicom/numpy and DCMTK's command-line tools"))
    func ctFixtureSeriesOrdersByPositionNotInstanceNumber() throws {
        let instances = try (0..<4).map { try Fixtures.instance("ct_\($0).dcm") }
        let slices = instances.map {
            Slice(position: $0.imagePositions[0], orientation: $0.imageOrientationPatient, instanceNumber: $0.instanceNumber)
        }
        #expect(SliceOrder.order(slices) == [0, 1, 2, 3])
        let withoutPositions = slices.map { Slice(position: nil, orientation: $0.orientation, instanceNumber: $0.instanceNumber) }
        #expect(SliceOrder.order(withoutPositions) == [3, 2, 1, 0])
    }
}

/// Damaged inputs never crash: every truncation point of the header and random byte changes either parse and decode
/// or throw a DICOMError. The fixtures are the same bytes on every run (fixed UIDs), so a failure here reproduces.
@Suite(.enabled(if: Tools.fixturesAvailable, "needs python3 with pydicom/highdicom/numpy and DCMTK's command-line tools"))
struct DamagedInputTests {
    static func attempt(_ bytes: [UInt8]) -> Bool {
        do {
            let instance = try DICOMInstance.parse(bytes, limits: DICOMLimits())
            for f in 0..<instance.numberOfFrames { _ = try instance.frame(f) }
            return true
        } catch {
            return false
        }
    }

    @Test(arguments: ["ct_0.dcm", "ct_0_rle.dcm", "ct_0_jpegls.dcm", "ct_0_jpegll.dcm", "multiframe_rle.dcm", "rgb_rle.dcm",
                      "rgb_jpeg.dcm"])
    func truncationsAndByteChanges(_ name: String) throws {
        let original = try Fixtures.bytes(name)
        var parsed = 0
        // Every cut in the first 1,500 bytes (the header), then every 997 bytes.
        for cut in Array(stride(from: 0, to: min(1500, original.count), by: 1)) + Array(stride(from: 1500, to: original.count, by: 997)) {
            if Self.attempt(Array(original.prefix(cut))) { parsed += 1 }
        }
        // Random byte changes (a fixed seed): 1 to 4 bytes each, biased to the header.
        var random = SplitMix(seed: 20261130)
        var survived = 0
        for _ in 0..<400 {
            var bytes = original
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let range = random.next() % 2 == 0 ? min(2000, bytes.count) : bytes.count
                bytes[Int(random.next() % UInt64(range))] = UInt8(truncatingIfNeeded: random.next())
            }
            if Self.attempt(bytes) { survived += 1 }
        }
        // Reaching this line is the point; the counts only show that both outcomes occurred.
        #expect(survived > 0)
        print("\(name): \(parsed) truncations decoded, \(survived) of 400 changed files decoded")
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
