internal import CLibPNG

/// Limits applied before any pixel memory is allocated (decompression-bomb protection).
public struct ImageLimits: Sendable, Equatable {
    public var maxWidth: Int
    public var maxHeight: Int
    public var maxPixels: Int

    public init(maxWidth: Int = 16384, maxHeight: Int = 16384, maxPixels: Int = 50_000_000) {
        self.maxWidth = maxWidth
        self.maxHeight = maxHeight
        self.maxPixels = maxPixels
    }
}

/// A decoded image reduced to one channel: luminance for color images (ITU-R BT.601 weights
/// 0.299 R + 0.587 G + 0.114 B), the gray value for gray images. Alpha is ignored. Values are
/// in sample units: 0...255 for 8-bit (and lower) files, 0...65535 for 16-bit files.
public struct GrayImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let values: [Float]
    /// The largest possible sample value (255 or 65535).
    public let maxValue: Float
    /// What the file held, for diagnostics: e.g. "8-bit palette".
    public let sourceFormat: String

    public init(width: Int, height: Int, values: [Float], maxValue: Float = 255, sourceFormat: String = "float") {
        precondition(values.count == width * height)
        self.width = width
        self.height = height
        self.values = values
        self.maxValue = maxValue
        self.sourceFormat = sourceFormat
    }
}

public enum PNGCodec {
    /// Decodes PNG bytes of any standard format (gray, gray+alpha, RGB, RGBA, palette;
    /// 1 to 16 bits; interlaced or not) into a `GrayImage`.
    ///
    /// Throws `IOError(.imageTooLarge)` when the header declares dimensions above `limits`
    /// (checked before pixel memory is allocated) and `IOError(.imageDecode)` for anything
    /// that is not a complete, valid PNG.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = ImageLimits()) throws -> GrayImage {
        var info = useg_png_info()
        let maxW = UInt32(clamping: limits.maxWidth), maxH = UInt32(clamping: limits.maxHeight)
        let header = bytes.withUnsafeBufferPointer { buf in
            useg_png_decode(buf.baseAddress, buf.count, 0x7fff_ffff, 0x7fff_ffff, nil, 0, &info)
        }
        guard header == 0 else { throw IOError(.imageDecode, "invalid PNG: \(message(&info))") }
        let width = Int(info.width), height = Int(info.height)
        if width > limits.maxWidth || height > limits.maxHeight || width * height > limits.maxPixels {
            throw IOError(.imageTooLarge,
                          "PNG is \(width)x\(height), above the limit of \(limits.maxWidth)x\(limits.maxHeight) and \(limits.maxPixels) pixels")
        }
        let channels = Int(info.channels), bytesPerSample = Int(info.bit_depth) / 8
        guard channels == 1 || channels == 3, bytesPerSample == 1 || bytesPerSample == 2 else {
            throw IOError(.imageDecode, "unsupported PNG layout: \(channels) channels, \(info.bit_depth) bits")
        }
        let sourceFormat = "\(info.file_bit_depth)-bit \(colorTypeName(Int(info.color_type)))"
        var raw = [UInt8](repeating: 0, count: width * height * channels * bytesPerSample)
        let status = bytes.withUnsafeBufferPointer { buf in
            raw.withUnsafeMutableBufferPointer { out in
                useg_png_decode(buf.baseAddress, buf.count, maxW, maxH, out.baseAddress, out.count, &info)
            }
        }
        guard status == 0 else { throw IOError(.imageDecode, "invalid PNG: \(message(&info))") }

        var values = [Float](repeating: 0, count: width * height)
        raw.withUnsafeBytes { rawBuffer in
            if bytesPerSample == 1 {
                let s = rawBuffer.bindMemory(to: UInt8.self)
                if channels == 1 {
                    for i in 0..<values.count { values[i] = Float(s[i]) }
                } else {
                    for i in 0..<values.count {
                        values[i] = luminance(Float(s[3 * i]), Float(s[3 * i + 1]), Float(s[3 * i + 2]))
                    }
                }
            } else {
                let s = rawBuffer.bindMemory(to: UInt16.self)
                if channels == 1 {
                    for i in 0..<values.count { values[i] = Float(s[i]) }
                } else {
                    for i in 0..<values.count {
                        values[i] = luminance(Float(s[3 * i]), Float(s[3 * i + 1]), Float(s[3 * i + 2]))
                    }
                }
            }
        }
        return GrayImage(width: width, height: height, values: values,
                         maxValue: bytesPerSample == 2 ? 65535 : 255, sourceFormat: sourceFormat)
    }

    /// Encodes 8-bit grayscale pixels (row-major, width*height bytes) as PNG.
    public static func encodeGray8(_ pixels: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        try encode8(pixels, width: width, height: height, channels: 1)
    }

    /// Encodes 8-bit RGB pixels (row-major, 3*width*height bytes, R G B per pixel) as PNG.
    public static func encodeRGB8(_ pixels: [UInt8], width: Int, height: Int) throws -> [UInt8] {
        try encode8(pixels, width: width, height: height, channels: 3)
    }

    private static func encode8(_ pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> [UInt8] {
        guard width > 0, height > 0, pixels.count == channels * width * height else {
            throw IOError(.imageEncode, "cannot encode a \(width)x\(height) image of \(channels) channels from \(pixels.count) bytes")
        }
        var size = 0
        var message = [CChar](repeating: 0, count: 200)
        let probe = pixels.withUnsafeBufferPointer { px in
            useg_png_encode8(px.baseAddress, UInt32(width), UInt32(height), Int32(channels), nil, &size, &message, message.count)
        }
        guard probe == 0, size > 0 else { throw IOError(.imageEncode, "PNG encoding failed: \(string(message))") }
        var out = [UInt8](repeating: 0, count: size)
        let status = pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBytes { o in
                useg_png_encode8(px.baseAddress, UInt32(width), UInt32(height), Int32(channels), o.baseAddress, &size,
                                 &message, message.count)
            }
        }
        guard status == 0 else { throw IOError(.imageEncode, "PNG encoding failed: \(string(message))") }
        return Array(out.prefix(size))
    }

    /// The version of the linked libpng.
    public static var libraryVersion: String {
        guard let v = useg_png_version() else { return "unknown" }
        return String(cString: v)
    }

    @inline(__always)
    static func luminance(_ r: Float, _ g: Float, _ b: Float) -> Float {
        0.299 * r + 0.587 * g + 0.114 * b
    }

    private static func message(_ info: inout useg_png_info) -> String {
        withUnsafeBytes(of: &info.message) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[0..<end], as: UTF8.self)
        }
    }

    private static func string(_ chars: [CChar]) -> String {
        let bytes = chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func colorTypeName(_ type: Int) -> String {
        switch type {
        case 0: return "gray"
        case 2: return "RGB"
        case 3: return "palette"
        case 4: return "gray+alpha"
        case 6: return "RGBA"
        default: return "type \(type)"
        }
    }
}
