import SegIO
import SegModel
import Testing

@Suite struct SafeTensorsTests {
    /// A hand-built file: header {"a": F32 [2], "b": F16 [1,2]} then 8 + 4 data bytes.
    func handBuilt(header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xff) }
        return out + h + data
    }

    let goodData: [UInt8] = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0,  // 1.0, -2.0 (F32 LE)
                             0x00, 0x3c, 0xff, 0x7b]            // 1.0, 65504 (F16 LE)

    @Test func readsAHandBuiltFile() throws {
        let file = handBuilt(
            header: #"{"__metadata__":{"input_size":"64"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]}}"#,
            data: goodData)
        let contents = try SafeTensors.parse(file)
        #expect(contents.tensors["a"] == NamedTensor(shape: [2], values: [1, -2]))
        #expect(contents.tensors["b"] == NamedTensor(shape: [1, 2], values: [1, 65504]))
        #expect(contents.metadata == ["input_size": "64"])
        #expect(contents.dtypes["b"] == .f16)
    }

    @Test(arguments: [
        (#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, "F64"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, "'a'"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}"#, "'b'"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[1],"data_offsets":[10,12]}}"#, "hole"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, "trailing"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,99]}}"#, "'b'"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,12]}}"#, "'a'"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, "JSON"),
        (#"[1,2]"#, "object"),
        (#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, "metadata"),
    ])
    func invalidHeadersAreRejectedWithTheReason(header: String, expected: String) {
        let error = #expect(throws: IOError.self) { try SafeTensors.parse(handBuilt(header: header, data: goodData)) }
        #expect(error?.code == .invalidWeights)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
    }

    @Test func headerLengthIsBounded() {
        var file: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
        file += Array("{}".utf8)
        #expect(throws: IOError.self) { try SafeTensors.parse(file) }
        #expect(throws: IOError.self) { try SafeTensors.parse([1, 2, 3]) }
        let big = handBuilt(header: "{" + String(repeating: " ", count: 2000) + "}", data: [])
        #expect(throws: IOError.self) { try SafeTensors.parse(big, maxHeaderBytes: 1000) }
    }

    @Test func serializeRoundTripsInBothDtypes() throws {
        let tensors = ["x": NamedTensor(shape: [2, 3], values: [0, 1, -1.5, 0.25, 1e-3, 3]),
                       "y": NamedTensor(shape: [1], values: [42])]
        let f32 = try SafeTensors.parse(try SafeTensors.serialize(tensors, metadata: ["m": "v"], dtype: .f32))
        #expect(f32.tensors == tensors)
        #expect(f32.metadata == ["m": "v"])
        let f16 = try SafeTensors.parse(try SafeTensors.serialize(tensors, dtype: .f16))
        for (name, t) in tensors {
            for (a, b) in zip(f16.tensors[name]!.values, t.values) { #expect(abs(a - b) <= 1e-3 * max(1, abs(b))) }
        }
    }

    @Test func weightsFileReadsArchitectureFromMetadata() throws {
        let cfg = UniverSegConfiguration(encoderWidths: [4, 6], decoderWidths: [5], inputSize: 16)
        let model = try UniverSeg.randomlyInitialized(cfg, seed: 2)
        let bytes = try SafeTensors.serialize(model.namedTensors, metadata: WeightsFile.metadata(for: cfg))
        let loaded = try WeightsFile(bytes: bytes)
        #expect(loaded.model.configuration == cfg)
        #expect(loaded.sha256 == SHA256.hex(bytes))
        // Without architecture metadata the v1 network is expected, so these weights no longer fit.
        let bare = try SafeTensors.serialize(model.namedTensors)
        let error = #expect(throws: IOError.self) { try WeightsFile(bytes: bare) }
        #expect(error?.code == .invalidWeights)
        #expect(error?.message.contains("enc_blocks.0") == true)
    }
}

@Suite struct SmallFormatTests {
    @Test func sha256KnownVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // FIPS 180-2, one million "a": 15,625 whole blocks and a padding-only tail.
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // 896 bits (NIST): one whole block and a tail that needs a second padding block.
        let bits896 = Array(("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                             + "mnopqrstnopqrstu").utf8)
        #expect(SHA256.hex(bits896) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    @Test func npyHeaderAndData() {
        let bytes = NPY.encodeFloat32([1, -2, 0.5, 0, 0, 0], shape: [2, 3])
        #expect(Array(bytes.prefix(8)) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        #expect(header.hasSuffix("\n"))
        #expect(bytes.count == 10 + headerLength + 24)
        #expect(Array(bytes[(10 + headerLength)..<(14 + headerLength)]) == [0, 0, 0x80, 0x3f])
    }
}
