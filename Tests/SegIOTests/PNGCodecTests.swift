import Foundation
import SegIO
import Testing

/// The picture every fixture holds (see Scripts/make_png_fixtures.py), 3 x 2.
let fixtureColors: [(Float, Float, Float)] = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (10, 20, 30)]
let fixtureGrays: [Float] = [0, 17, 34, 85, 170, 255]

func fixture(_ name: String) throws -> [UInt8] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
    return [UInt8](try Data(contentsOf: url))
}

@Suite struct PNGCodecTests {
    @Test(arguments: ["gray8.png", "gray-alpha8.png", "gray8-interlaced.png"])
    func grayFormatsDecodeToTheirValues(name: String) throws {
        let image = try PNGCodec.decode(try fixture(name))
        #expect(image.width == 3 && image.height == 2)
        #expect(image.values == fixtureGrays)
        #expect(image.maxValue == 255)
    }

    @Test func sixteenBitGrayKeepsFullPrecision() throws {
        let image = try PNGCodec.decode(try fixture("gray16.png"))
        #expect(image.values == fixtureGrays.map { $0 * 257 })
        #expect(image.maxValue == 65535)
    }

    @Test(arguments: ["rgb8.png", "rgba8.png", "palette8.png", "rgb16.png"])
    func colorBecomesLuminance(name: String) throws {
        let image = try PNGCodec.decode(try fixture(name))
        let scale: Float = name.contains("16") ? 257 : 1
        let expected = fixtureColors.map { (0.299 * $0.0 + 0.587 * $0.1 + 0.114 * $0.2) * scale }
        #expect(image.width == 3 && image.height == 2)
        for (a, b) in zip(image.values, expected) { #expect(abs(a - b) <= 1e-3 * max(1, b)) }
    }

    @Test func lowBitDepthGrayIsExpandedToEightBits() throws {
        let image = try PNGCodec.decode(try fixture("gray1.png"))
        #expect(image.values == [255, 0, 255, 255, 0, 0, 0, 255])
    }

    @Test func encodeThenDecodeRoundTrips() throws {
        let pixels: [UInt8] = (0..<(17 * 5)).map { UInt8(($0 * 37) % 256) }
        let bytes = try PNGCodec.encodeGray8(pixels, width: 17, height: 5)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let image = try PNGCodec.decode(bytes)
        #expect(image.width == 17 && image.height == 5)
        #expect(image.values == pixels.map(Float.init))
    }

    @Test func declaredHugeDimensionsAreRejectedBeforeDecoding() throws {
        let error = #expect(throws: IOError.self) { try PNGCodec.decode(try fixture("bomb.png")) }
        #expect(error?.code == .imageTooLarge)
        let small = try PNGCodec.encodeGray8([UInt8](repeating: 1, count: 64 * 64), width: 64, height: 64)
        let limited = #expect(throws: IOError.self) {
            try PNGCodec.decode(small, limits: ImageLimits(maxWidth: 32, maxHeight: 4096, maxPixels: 1 << 20))
        }
        #expect(limited?.code == .imageTooLarge)
    }

    @Test func truncatedCorruptAndForeignBytesAreDecodeErrors() throws {
        let good = try fixture("rgb8.png")
        var corrupt = good
        corrupt[good.count - 20] ^= 0xFF  // inside IDAT: CRC mismatch
        let cases: [[UInt8]] = [
            [], Array("hello, not a png".utf8), Array(good.prefix(8)), Array(good.prefix(30)),
            Array(good.prefix(good.count - 12)), corrupt,
        ]
        for bytes in cases {
            let error = #expect(throws: IOError.self) { try PNGCodec.decode(bytes) }
            #expect(error?.code == .imageDecode)
        }
    }
}
