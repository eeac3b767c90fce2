import Foundation
import SegIO
import SegModel
import SegTesting
import Testing

@Suite struct SupportSetTests {
    func writeSet(_ dir: TemporaryDirectory, entries: Int, emptyLabels: Bool = false) throws {
        var list: [String] = []
        for i in 0..<entries {
            let image = (0..<(20 * 10)).map { UInt8(($0 * (i + 3)) % 256) }
            let label = (0..<(20 * 10)).map { emptyLabels ? UInt8(0) : UInt8($0 % 20 < 10 ? 255 : 0) }
            try dir.write("images/\(i).png", try PNGCodec.encodeGray8(image, width: 20, height: 10))
            try dir.write("labels/\(i).png", try PNGCodec.encodeGray8(label, width: 20, height: 10))
            list.append(#"{"image":"images/\#(i).png","label":"labels/\#(i).png"}"#)
        }
        try dir.write("support.json", Array(#"{"name":"t","version":"1","label":"x","entries":[\#(list.joined(separator: ","))]}"#.utf8))
    }

    @Test func loadsAndPreprocessesADirectory() throws {
        let dir = try TemporaryDirectory()
        try writeSet(dir, entries: 3)
        let set = try SupportSetDirectory.load(directory: dir.path, size: 16)
        #expect(set.manifest.name == "t")
        #expect(set.tensors.count == 3 && set.tensors.size == 16)
        let plane = 256
        let image0 = Array(set.tensors.pairs[0..<plane]), label0 = Array(set.tensors.pairs[plane..<(2 * plane)])
        #expect(image0.min() == 0 && image0.max() == 1)
        #expect(Set(label0) == [0, 1])
        // Left half of every label is foreground.
        #expect(label0[0] == 1 && label0[15] == 0)
        #expect(set.sha256.count == 64)
        #expect(set.sha256 == (try SupportSetDirectory.load(directory: dir.path, size: 16)).sha256)
    }

    @Test func allEmptyLabelsAreRejected() throws {
        let dir = try TemporaryDirectory()
        try writeSet(dir, entries: 2, emptyLabels: true)
        let error = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16) }
        #expect(error?.code == .invalidSupportSet)
    }

    @Test(arguments: [
        #"{"entries":[]}"#,
        #"{"entries":[{"image":"../secret.png","label":"l.png"}]}"#,
        #"{"entries":[{"image":"/etc/passwd","label":"l.png"}]}"#,
        #"{"entries":[{"image":"a/./b.png","label":"l.png"}]}"#,
        #"{"entries":[{"image":"a.png"}]}"#,
        #"{"entries":[{"image":1,"label":"l.png"}]}"#,
        #"{"entries":"#,
        #"[]"#,
    ])
    func invalidManifestsAreRejected(json: String) {
        let error = #expect(throws: IOError.self) { try SupportSetDirectory.parseManifest(Array(json.utf8)) }
        #expect(error?.code == .invalidSupportSet)
    }

    @Test func tooManyEntriesAndOversizedManifestsAreRejected() {
        let entry = #"{"image":"a.png","label":"b.png"}"#
        let json = #"{"entries":[\#(Array(repeating: entry, count: 5).joined(separator: ","))]}"#
        #expect(throws: IOError.self) {
            try SupportSetDirectory.parseManifest(Array(json.utf8), limits: SupportSetLimits(maxEntries: 4))
        }
        #expect(throws: IOError.self) {
            try SupportSetDirectory.parseManifest(Array(json.utf8), limits: SupportSetLimits(maxManifestBytes: 20))
        }
    }

    @Test func missingAndCorruptFilesNameTheEntry() throws {
        let dir = try TemporaryDirectory()
        try writeSet(dir, entries: 2)
        try dir.write("labels/1.png", Array("garbage".utf8))
        let corrupt = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16) }
        #expect(corrupt?.message.contains("entry 1 label") == true)
        try FileManager.default.removeItem(atPath: dir.path + "/images/0.png")
        let missing = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16) }
        #expect(missing?.code == .invalidSupportSet)
        #expect(missing?.message.contains("entry 0") == true)
    }

    @Test(arguments: [2, 3, 8])
    func decodingOnSeveralThreadsGivesTheSameSet(threads: Int) throws {
        let dir = try TemporaryDirectory()
        try writeSet(dir, entries: 19)  // more than one window of entries on every thread count here
        let serial = try SupportSetDirectory.load(directory: dir.path, size: 16, threads: 1)
        let parallel = try SupportSetDirectory.load(directory: dir.path, size: 16, threads: threads)
        #expect(parallel.tensors.count == 19)
        #expect(parallel.tensors.pairs == serial.tensors.pairs)
        #expect(parallel.sha256 == serial.sha256)
    }

    @Test(arguments: [1, 2, 8])
    func theFirstFailingEntryInManifestOrderIsReported(threads: Int) throws {
        let dir = try TemporaryDirectory()
        try writeSet(dir, entries: 12)
        // Entry 3 cannot be decoded and entry 5 cannot be read: entry 3 is reported, whatever the
        // thread count and however the entries fall into windows.
        try dir.write("images/3.png", Array("not a png".utf8))
        try FileManager.default.removeItem(atPath: dir.path + "/labels/5.png")
        let first = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16, threads: threads) }
        #expect(first?.message.contains("entry 3 image") == true)
        try dir.write("images/3.png", try PNGCodec.encodeGray8([UInt8](repeating: 7, count: 200), width: 20, height: 10))
        let second = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16, threads: threads) }
        #expect(second?.message.contains("entry 5") == true)
        // A corrupt entry after an unreadable one is not reported first either.
        try dir.write("labels/9.png", Array("garbage".utf8))
        let third = #expect(throws: IOError.self) { try SupportSetDirectory.load(directory: dir.path, size: 16, threads: threads) }
        #expect(third?.message.contains("entry 5") == true)
    }
}
