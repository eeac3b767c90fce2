internal import SegIO

/// Pictures of an evaluation that a person can check at a glance (RGB pixels, row-major).
///
/// - `grid`: the test queries with the best, median and worst UniverSeg Dice side by side, each
///   the gray image with the ground-truth outline in green and UniverSeg's in red (yellow where
///   they coincide).
/// - `plot`: Dice (0-100, gridlines every 25) against N (1, 4, 16, 64 evenly spaced) for
///   UniverSeg (red), the prior mask (blue) and the intensity classifier (green) at one K.
package enum EvaluationPictures {
    package struct RGBImage: Sendable, Equatable {
        package let width: Int
        package let height: Int
        package var pixels: [UInt8]

        package init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
            self.width = width
            self.height = height
            pixels = [UInt8](repeating: 0, count: 3 * width * height)
            for i in 0..<(width * height) { set(i % width, i / width, fill) }
        }

        package func at(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
            let i = 3 * (y * width + x)
            return (pixels[i], pixels[i + 1], pixels[i + 2])
        }

        package mutating func set(_ x: Int, _ y: Int, _ color: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = 3 * (y * width + x)
            pixels[i] = color.0
            pixels[i + 1] = color.1
            pixels[i + 2] = color.2
        }

        package func png() throws -> [UInt8] { try PNGCodec.encodeRGB8(pixels, width: width, height: height) }
    }

    static let truthColor: (UInt8, UInt8, UInt8) = (0, 220, 0)
    static let predictionColor: (UInt8, UInt8, UInt8) = (230, 0, 0)
    static let bothColor: (UInt8, UInt8, UInt8) = (240, 220, 0)

    /// The outline of a binary mask: foreground pixels with a 4-neighbour outside the mask or
    /// on the image border.
    package static func outline(_ mask: [UInt8], width: Int, height: Int) -> [Bool] {
        precondition(mask.count == width * height)
        var result = [Bool](repeating: false, count: mask.count)
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] != 0 {
                let edge = x == 0 || y == 0 || x == width - 1 || y == height - 1
                    || mask[y * width + x - 1] == 0 || mask[y * width + x + 1] == 0
                    || mask[(y - 1) * width + x] == 0 || mask[(y + 1) * width + x] == 0
                result[y * width + x] = edge
            }
        }
        return result
    }

    /// One panel: `gray` ([0, 1], width x height) with the two outlines drawn over it.
    package static func panel(gray: [Float], truth: [UInt8], prediction: [UInt8], width: Int, height: Int) -> RGBImage {
        var image = RGBImage(width: width, height: height)
        let truthLine = outline(truth, width: width, height: height)
        let predictedLine = outline(prediction, width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                let v = UInt8(max(0, min(255, (gray[i] * 255).rounded())))
                switch (truthLine[i], predictedLine[i]) {
                case (true, true): image.set(x, y, bothColor)
                case (true, false): image.set(x, y, truthColor)
                case (false, true): image.set(x, y, predictionColor)
                case (false, false): image.set(x, y, (v, v, v))
                }
            }
        }
        return image
    }

    /// Panels side by side on a dark background, `gap` pixels apart, tops aligned.
    package static func row(_ panels: [RGBImage], gap: Int = 4) -> RGBImage {
        let width = panels.reduce(gap) { $0 + $1.width + gap }
        let height = (panels.map(\.height).max() ?? 0) + 2 * gap
        var image = RGBImage(width: width, height: height, fill: (32, 32, 32))
        var left = gap
        for panel in panels {
            for y in 0..<panel.height { for x in 0..<panel.width { image.set(left + x, gap + y, panel.at(x, y)) } }
            left += panel.width + gap
        }
        return image
    }

    /// The best, median and worst predictions by Dice (fewer when there are fewer).
    package static func chosen(_ predictions: [FewShotEvaluation.Prediction]) -> [FewShotEvaluation.Prediction] {
        let sorted = predictions.sorted { $0.dice != $1.dice ? $0.dice > $1.dice : $0.item < $1.item }
        guard sorted.count > 3 else { return sorted }
        return [sorted[0], sorted[sorted.count / 2], sorted[sorted.count - 1]]
    }

    static let seriesColors: [FewShotEvaluation.Method: (UInt8, UInt8, UInt8)] = [
        .universeg: (220, 0, 0), .priorMask: (0, 80, 230), .intensity: (0, 170, 0),
    ]

    /// Dice against N at ensemble size `k`; 64 pixels per N step, 2 pixels per Dice point.
    package static func plot(_ report: FewShotEvaluation.Report, ensemble k: Int) -> RGBImage {
        let sizes = Array(Set(report.rows.filter { $0.ensemble == k }.map(\.supportSize))).sorted()
        let margin = 16, step = 64, plotHeight = 200
        let width = 2 * margin + step * max(1, sizes.count - 1), height = plotHeight + 2 * margin
        var image = RGBImage(width: width, height: height, fill: (255, 255, 255))
        func y(_ dice: Double) -> Int { margin + plotHeight - Int((max(0, min(100, dice)) * 2).rounded()) }
        for level in stride(from: 0.0, through: 100, by: 25) {
            for x in margin...(width - margin) { image.set(x, y(level), level == 0 ? (0, 0, 0) : (210, 210, 210)) }
        }
        for i in sizes.indices {
            let x = margin + i * step
            for yy in (margin)...(margin + plotHeight) { image.set(x, yy, (230, 230, 230)) }
        }
        for yy in margin...(margin + plotHeight) { image.set(margin, yy, (0, 0, 0)) }
        for method in [FewShotEvaluation.Method.priorMask, .intensity, .universeg] {
            let color = seriesColors[method] ?? (0, 0, 0)
            let points: [(Int, Int)] = sizes.enumerated().compactMap { i, n in
                report.rows.first { $0.method == method && $0.supportSize == n && $0.ensemble == k }
                    .map { (margin + i * step, y($0.dice)) }
            }
            for (a, b) in zip(points, points.dropFirst()) { line(&image, a, b, color) }
            for p in points {
                for dy in -2...2 { for dx in -2...2 { image.set(p.0 + dx, p.1 + dy, color) } }
            }
        }
        return image
    }

    /// A 2-pixel-thick straight line (Bresenham).
    static func line(_ image: inout RGBImage, _ a: (Int, Int), _ b: (Int, Int), _ color: (UInt8, UInt8, UInt8)) {
        var (x, y) = a
        let dx = abs(b.0 - x), dy = -abs(b.1 - y)
        let sx = x < b.0 ? 1 : -1, sy = y < b.1 ? 1 : -1
        var error = dx + dy
        while true {
            image.set(x, y, color)
            image.set(x, y + 1, color)
            if x == b.0 && y == b.1 { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }
}
