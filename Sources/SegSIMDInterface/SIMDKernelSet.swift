/// The vector kernels that are compiled once per instruction set (SegSIMDPortable for any x86-64,
/// SegSIMDAVX2 for AVX2 + FMA, SegSIMDAVX512 for AVX-512; one source, see SegSIMDPortable), so
/// that a single binary runs the best build the CPU supports. SegKernels chooses one at start
/// and calls it through this protocol; each call covers a whole channel or plane, so the
/// indirection costs nothing measurable.
///
/// Layouts are those of SegKernels' Winograd convolution: transform planes `kStride` floats
/// apart, tiles in row-major order within a band of tile rows.
public protocol SIMDKernelSet {
    /// The instruction set this build was compiled for ("x86-64", "AVX2+FMA", "AVX-512").
    static var instructionSet: String { get }

    /// F(2x2, 3x3) input transform (V = Bᵀ d B) of one zero-padded channel plane (`paddedWidth`
    /// floats per row) for tile rows `tileRowStart ..< tileRowEnd`: 16 values per tile into `out`.
    static func f2Input(plane: UnsafePointer<Float>, paddedWidth: Int, tileRowStart: Int, tileRowEnd: Int,
                        tilesX: Int, out: UnsafeMutablePointer<Float>, kStride: Int)

    /// F(2x2, 3x3) output transform (Y = Aᵀ M A) of one output channel whose transformed values
    /// start at `mo` into `plane`; adds `bias`, adds the plane `addend` when given (same layout as
    /// `plane`, which it may be), applies a LeakyReLU of `slope` with `leaky`, and zeroes the
    /// values of M it reads. Then each value is stored into `plane`, or added to it with `sum`
    /// (a running sum of activated outputs); with `pooled`, the 2x2 max-pooling (stride 2, odd
    /// trailing rows and columns dropped) of the values themselves (not of the sums) is also
    /// written there, (height / 2) x (width / 2) floats, as `maxPool2x2` would compute it.
    static func f2Output(mo: UnsafeMutablePointer<Float>, kStride: Int, tileRowStart: Int, tileRowEnd: Int, tilesX: Int,
                         height: Int, width: Int, bias: Float, plane: UnsafeMutablePointer<Float>, addend: UnsafePointer<Float>?,
                         leaky: Bool, slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?)

    /// F(4x4, 3x3): one input row (`width` floats) padded with a zero column on the left and
    /// zeros on the right to 4 * phaseWidth columns (phaseWidth >= 1, 4 * phaseWidth > width),
    /// split by column phase: padded column X (input column X - 1) goes to column X / 4 of
    /// phase plane X % 4 (`row`, planes `phasePlane` apart).
    static func f4SplitPaddedRow(input: UnsafePointer<Float>, width: Int, row: UnsafeMutablePointer<Float>,
                                 phasePlane: Int, phaseWidth: Int)

    /// F(4x4, 3x3) input transform of one channel's phase planes: 36 values per tile into `out`.
    static func f4Input(channel: UnsafePointer<Float>, phasePlane: Int, phaseWidth: Int, tileRowStart: Int,
                        tileRowEnd: Int, tilesX: Int, out: UnsafeMutablePointer<Float>, kStride: Int)

    /// F(4x4, 3x3) output transform of one output channel (as `f2Output`).
    static func f4Output(mo: UnsafeMutablePointer<Float>, kStride: Int, tileRowStart: Int, tileRowEnd: Int, tilesX: Int,
                         height: Int, width: Int, bias: Float, plane: UnsafeMutablePointer<Float>, addend: UnsafePointer<Float>?,
                         leaky: Bool, slope: Float, sum: Bool, pooled: UnsafeMutablePointer<Float>?)

    /// 2x2 max-pooling with stride 2 of one plane (odd trailing rows and columns dropped).
    static func maxPool2x2(input: UnsafePointer<Float>, height: Int, width: Int, output: UnsafeMutablePointer<Float>)

    /// One output row of a bilinear resampling: out[x] = lerp(lerp(r0, r1, wy) at i0[x], i1[x], f[x]).
    static func bilinearRow(r0: UnsafePointer<Float>, r1: UnsafePointer<Float>, wy: Float, i0: UnsafePointer<Int32>,
                            i1: UnsafePointer<Int32>, f: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>)
}
