import Foundation
import SegKernels
import SegTiming

/// Kernel-level figures: raw sgemm on convolution shapes, im2col, and the whole 3x3 convolution.
struct KernelBench {
    let threads: [Int]
    let repeats: Int

    func time(_ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<max(repeats, 3) {
            let start = ContinuousClock.now
            body()
            let d = ContinuousClock.now - start
            times.append(d.milliseconds)
        }
        return times.sorted()[times.count / 2]
    }

    func run() throws {
        let side = 128, hw = side * side
        let cin = 64, cout = 64, k = cin * 9
        let a = FloatBuffer(capacity: cout * k * 4)
        let b = FloatBuffer(capacity: k * hw)
        let c = FloatBuffer(capacity: cout * hw)
        let input = FloatBuffer(capacity: cin * hw)
        for i in 0..<(cout * k * 4) { a.pointer[i] = Float(i % 7) * 0.01 }
        for i in 0..<(k * hw) { b.pointer[i] = Float(i % 11) * 0.01 }
        for i in 0..<(cin * hw) { input.pointer[i] = Float(i % 13) * 0.01 }
        print("kernel                                   threads      ms   GFLOP/s")
        for t in threads {
            BLAS.setThreadCount(t)
            for (n, kk) in [(1024, k), (4096, k), (16384, k), (1024, 64), (4096, 64), (4096, 128), (4096, 256)] {
                let ms = time {
                    BLAS.sgemm(m: cout, n: n, k: kk, a: a.pointer, lda: kk, b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
                }
                let flop = 2.0 * Double(cout * n * kk)
                print(String(format: "sgemm M=%d N=%-5d K=%-4d              %7d %7.2f %9.1f", cout, n, kk, t, ms, flop / ms / 1e6))
            }
            let msCol = time {
                Conv2D.im2col3x3(input: input.pointer, channels: cin, height: side, width: side,
                                 rowStart: 0, rowEnd: side, into: b.pointer)
            }
            print(String(format: "im2col 64ch 128x128 (%5.1f MB)          %7d %7.2f", Double(k * hw * 4) / 1e6, t, msCol))
            for band in [1024, 2048, 4096, 16384] {
                let scratch = Conv2D.scratchCount(inChannels: cin, height: side, width: side, bandColumns: band)
                let ms = time {
                    Conv2D.conv3x3(input: input.pointer, inChannels: cin, height: side, width: side,
                                   weight: a.pointer, outChannels: cout, bias: a.pointer, output: c.pointer,
                                   activation: .leakyReLU(0.01), scratch: b.pointer, scratchCapacity: scratch,
                                   bandColumns: band)
                }
                let flop = 2.0 * Double(cout * hw * k)
                print(String(format: "conv3x3 64->64 128x128 band %-5d        %7d %7.2f %9.1f", band, t, ms, flop / ms / 1e6))
            }
            for variant in Winograd.Variant.allCases {
                for band in [64, 128, 256, 512] {
                    let filter = Winograd.Filter(weight: a.pointer, rowStride: cin * 9, inChannels: cin, outChannels: cout,
                                                 variant: variant)
                    let count = Winograd.scratchCount(inChannels: cin, outChannels: cout, height: side, width: side,
                                                      bandTiles: band, variant: variant)
                    let scratch = FloatBuffer(capacity: count)
                    let ms = time {
                        Winograd.conv3x3(input: input.pointer, height: side, width: side, filter: filter, bias: a.pointer,
                                         output: c.pointer, activation: .leakyReLU(0.01), scratch: scratch.pointer,
                                         scratchCapacity: count, bandTiles: band, threads: t)
                    }
                    let flop = 2.0 * Double(cout * hw * k)
                    print("winograd \(variant.rawValue) 64->64 128x128 band" + String(format: " %-4d  %7d %7.2f %9.1f", band, t, ms, flop / ms / 1e6))
                }
            }
        }
    }
}
