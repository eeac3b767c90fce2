/// Image preprocessing shared by every command, so that the daemon, `segment` and `eval`
/// see identical model inputs:
/// - images: bilinear resize to the model size (a triangle filter, widened when shrinking so
///   that downscaling averages instead of aliasing, as PIL's BILINEAR does), then min-max
///   scaling to [0, 1] over the resized image (a constant image becomes all zeros);
/// - labels: nonzero = foreground, then nearest-neighbour resize, values {0, 1};
/// - outputs: probabilities resized bilinearly to the original size, then thresholded.
public enum Preprocess {
    /// Model input for an image: resize to size x size, then min-max to [0, 1].
    public static func image(_ image: GrayImage, size: Int) -> [Float] {
        let resized = resizeBilinear(image.values, width: image.width, height: image.height,
                                     toWidth: size, toHeight: size)
        return normalizeMinMax(resized)
    }

    /// Model input for a label: binarize (nonzero = 1), then nearest resize to size x size.
    public static func label(_ image: GrayImage, size: Int) -> [Float] {
        let binary = image.values.map { $0 != 0 ? Float(1) : Float(0) }
        return resizeNearest(binary, width: image.width, height: image.height, toWidth: size, toHeight: size)
    }

    /// Scales to [0, 1] by (x - min) / (max - min); a constant input becomes all zeros.
    public static func normalizeMinMax(_ values: [Float]) -> [Float] {
        guard let lo = values.min(), let hi = values.max(), hi > lo else {
            return [Float](repeating: 0, count: values.count)
        }
        let scale = 1 / (hi - lo)
        return values.map { ($0 - lo) * scale }
    }

    /// Nearest-neighbour resize: output pixel o takes input floor((o + 0.5) * in / out).
    public static func resizeNearest(_ values: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [Float] {
        if width == toWidth && height == toHeight { return values }
        let xs = (0..<toWidth).map { min(width - 1, Int((Double($0) + 0.5) * Double(width) / Double(toWidth))) }
        let ys = (0..<toHeight).map { min(height - 1, Int((Double($0) + 0.5) * Double(height) / Double(toHeight))) }
        var out = [Float](repeating: 0, count: toWidth * toHeight)
        for (oy, y) in ys.enumerated() {
            for (ox, x) in xs.enumerated() { out[oy * toWidth + ox] = values[y * width + x] }
        }
        return out
    }

    /// Separable bilinear resize with half-pixel centres. When shrinking, the triangle filter
    /// is widened by the scale factor (antialiasing); when enlarging it is plain bilinear
    /// interpolation with edge clamping.
    public static func resizeBilinear(_ values: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [Float] {
        if width == toWidth && height == toHeight { return values }
        let wx = filterTaps(inSize: width, outSize: toWidth)
        let wy = filterTaps(inSize: height, outSize: toHeight)
        // Horizontal pass: [height, toWidth].
        var mid = [Float](repeating: 0, count: height * toWidth)
        for y in 0..<height {
            let row = y * width
            for ox in 0..<toWidth {
                let t = wx[ox]
                var acc: Float = 0
                for (k, w) in t.weights.enumerated() { acc += w * values[row + t.start + k] }
                mid[y * toWidth + ox] = acc
            }
        }
        // Vertical pass: [toHeight, toWidth].
        var out = [Float](repeating: 0, count: toHeight * toWidth)
        for oy in 0..<toHeight {
            let t = wy[oy]
            for (k, w) in t.weights.enumerated() {
                let src = (t.start + k) * toWidth
                let dst = oy * toWidth
                for ox in 0..<toWidth { out[dst + ox] += w * mid[src + ox] }
            }
        }
        return out
    }

    struct Taps { var start: Int; var weights: [Float] }

    static func filterTaps(inSize: Int, outSize: Int) -> [Taps] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale
        return (0..<outSize).map { o in
            let center = (Double(o) + 0.5) * scale
            let lo = max(0, Int((center - support).rounded(.down)))
            let hi = min(inSize, Int((center + support).rounded(.up)))
            var weights: [Double] = []
            for i in lo..<hi {
                let t = abs((Double(i) + 0.5 - center) / filterScale)
                weights.append(max(0, 1 - t))
            }
            var first = 0
            while first < weights.count - 1 && weights[first] == 0 { first += 1 }
            var last = weights.count - 1
            while last > first && weights[last] == 0 { last -= 1 }
            let kept = Array(weights[first...last])
            let total = kept.reduce(0, +)
            let normalized = total > 0 ? kept.map { Float($0 / total) } : [1]
            return Taps(start: lo + first, weights: normalized)
        }
    }

    /// Foreground mask (0 or 255 per pixel) at the original size from a size x size
    /// probability map: bilinear resize, then `p > threshold`.
    public static func mask(probabilities: [Float], size: Int, width: Int, height: Int, threshold: Float) -> [UInt8] {
        let resized = resizeBilinear(probabilities, width: size, height: size, toWidth: width, toHeight: height)
        return resized.map { $0 > threshold ? 255 : 0 }
    }
}
