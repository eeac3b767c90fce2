/// Measures of agreement between segmentation masks. Dice lives here, next to the network,
/// because both the service (a request with ground truth) and the evaluation protocol use it.
public enum SegmentationMetrics {
    /// Dice coefficient 2|A ∩ B| / (|A| + |B|) of two binary masks (nonzero = foreground);
    /// 1 when both are empty.
    public static func dice(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var inter = 0, sa = 0, sb = 0
        for i in a.indices {
            let x = a[i] != 0, y = b[i] != 0
            if x { sa += 1 }
            if y { sb += 1 }
            if x && y { inter += 1 }
        }
        return sa + sb == 0 ? 1 : 2 * Double(inter) / Double(sa + sb)
    }
}
