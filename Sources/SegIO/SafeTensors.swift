internal import Foundation
public import SegModel

/// The safetensors container: 8-byte little-endian header length, a JSON header mapping each
/// tensor name to {dtype, shape, data_offsets} (plus an optional "__metadata__" object of
/// strings), then the raw little-endian data. F32 and F16 tensors are read (F16 is widened
/// to float32); files are written as F32 or F16.
public enum SafeTensors {
    public enum DType: String, Sendable {
        case f32 = "F32"
        case f16 = "F16"
        var size: Int { self == .f32 ? 4 : 2 }
    }

    public struct Contents: Sendable {
        public var tensors: [String: NamedTensor]
        public var metadata: [String: String]
        /// dtype of each tensor as stored.
        public var dtypes: [String: DType]
    }

    /// Largest accepted JSON header.
    public static let defaultMaxHeaderBytes = 16 << 20

    /// Parses and validates a whole file held in memory.
    ///
    /// Rejected, with the tensor named: a header longer than `maxHeaderBytes` or the file,
    /// invalid JSON, dtypes other than F32/F16, negative or overflowing shapes, data offsets
    /// outside the data section, byte ranges that do not match the shape, overlapping
    /// ranges, and data bytes not covered by any tensor.
    public static func parse(_ bytes: [UInt8], maxHeaderBytes: Int = defaultMaxHeaderBytes) throws -> Contents {
        guard bytes.count >= 8 else { throw invalid("file is \(bytes.count) bytes, too short for a safetensors header") }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw invalid("header length \(headerLength) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        guard headerLength >= 2, Int(headerLength) <= bytes.count - 8 else {
            throw invalid("header length \(headerLength) does not fit in a file of \(bytes.count) bytes")
        }
        let headerEnd = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd]), options: [])
        } catch {
            throw invalid("header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw invalid("header is not a JSON object") }
        let dataSize = bytes.count - headerEnd

        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let dict = meta as? [String: Any] else { throw invalid("__metadata__ is not an object") }
            for (k, v) in dict {
                guard let s = v as? String else { throw invalid("__metadata__ value for '\(k)' is not a string") }
                metadata[k] = s
            }
        }

        struct Entry { let name: String; let dtype: DType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let desc = value as? [String: Any] else { throw invalid("tensor '\(name)': entry is not an object") }
            guard let dtypeName = desc["dtype"] as? String else { throw invalid("tensor '\(name)': missing dtype") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw invalid("tensor '\(name)': dtype \(dtypeName) is not supported (F32, F16)")
            }
            guard let shapeAny = desc["shape"] as? [Any], shapeAny.count <= 8 else {
                throw invalid("tensor '\(name)': shape missing or of rank above 8")
            }
            var shape: [Int] = []
            var count = 1
            for d in shapeAny {
                guard let n = integer(d), n >= 0 else { throw invalid("tensor '\(name)': invalid dimension in shape") }
                let (product, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow, product <= dataSize else { throw invalid("tensor '\(name)': shape too large for the file") }
                shape.append(n)
                count = product
            }
            guard let offsets = desc["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = integer(offsets[0]), let end = integer(offsets[1]),
                  begin >= 0, begin <= end, end <= dataSize
            else {
                throw invalid("tensor '\(name)': data_offsets missing or outside the \(dataSize)-byte data section")
            }
            guard end - begin == count * dtype.size else {
                throw invalid("tensor '\(name)': \(end - begin) data bytes for shape \(shape) of \(dtype.rawValue)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // Byte ranges must tile the data section exactly: no overlaps, no holes.
        var cursor = 0
        for e in entries.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            if e.begin < cursor { throw invalid("tensor '\(e.name)': data overlaps another tensor") }
            if e.begin > cursor { throw invalid("tensor '\(e.name)': data section has a hole before it") }
            cursor = e.end
        }
        guard cursor == dataSize else { throw invalid("data section has \(dataSize - cursor) trailing bytes") }

        var tensors: [String: NamedTensor] = [:]
        var dtypes: [String: DType] = [:]
        bytes.withUnsafeBytes { raw in
            for e in entries {
                let count = (e.end - e.begin) / e.dtype.size
                let base = raw.baseAddress! + headerEnd + e.begin
                // Every value is written below: no zeroing first.
                let values = [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    switch e.dtype {
                    case .f32:
                        for i in 0..<count {
                            out[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                        }
                    case .f16:
                        for i in 0..<count {
                            let bits = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                            out[i] = halfToFloat(bits)
                        }
                    }
                    initialized = count
                }
                tensors[e.name] = NamedTensor(shape: e.shape, values: values)
                dtypes[e.name] = e.dtype
            }
        }
        return Contents(tensors: tensors, metadata: metadata, dtypes: dtypes)
    }

    /// Serializes tensors (sorted by name) with `metadata` in the given dtype.
    public static func serialize(_ tensors: [String: NamedTensor], metadata: [String: String] = [:],
                                 dtype: DType = .f32) throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            let bytes = t.values.count * dtype.size
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for name in names {
            for v in tensors[name]!.values {
                switch dtype {
                case .f32:
                    var bits = v.bitPattern.littleEndian
                    withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
                case .f16:
                    var bits = floatToHalf(v).littleEndian
                    withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
                }
            }
        }
        return out
    }

    private static func integer(_ any: Any) -> Int? {
        // JSONSerialization yields NSNumber; on Linux `is Bool` holds for every NSNumber,
        // so only the integer conversion is checked (an exact conversion of 2.0 is accepted).
        any as? Int
    }

    private static func invalid(_ message: String) -> IOError {
        IOError(.invalidWeights, "invalid safetensors file: \(message)")
    }

    /// IEEE 754 binary16 -> binary32, including subnormals, infinities and NaN.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1f)
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24.
            let magnitude = Float(mantissa) * (1.0 / 16_777_216.0)
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 31 {
            return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }

    /// binary32 -> binary16 with round-to-nearest-even.
    static func floatToHalf(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }
}
