internal import COpenBLAS
#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// The one door to OpenBLAS: thread control and the single `sgemm` entry point that every
/// kernel in this module goes through.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses for every following call (process-wide).
    /// Values below 1 are treated as 1.
    ///
    /// In `.independentCalls` mode (the default) OpenBLAS itself runs single-threaded and the
    /// kernels run independent sgemm calls on `count` threads side by side (see
    /// `forEachIndependent`); in `.threadedCalls` mode each sgemm call is split by OpenBLAS.
    public static func setThreadCount(_ count: Int, mode: ThreadingMode = .independentCalls) {
        let n = max(1, count)
        Parallel.threadCount = n
        independent.store(mode == .independentCalls, ordering: .relaxed)
        let blasThreads = Int32(clamping: mode == .independentCalls ? 1 : n)
        // Only on a change: openblas_set_num_threads restarts a stopped thread pool
        // (see `stopIdleThreadPool`), even for one thread.
        if openblas_get_num_threads() != blasThreads { openblas_set_num_threads(blasThreads) }
    }

    public enum ThreadingMode: Sendable {
        case independentCalls
        case threadedCalls
    }

    private static let independent = Atomic<Bool>(false)

    /// True when OpenBLAS is single-threaded and kernels parallelize over independent calls.
    public static var runsIndependentCalls: Bool {
        independent.load(ordering: .relaxed) && Parallel.threadCount > 1
    }

    /// Runs `body(i)` for i in 0..<count: side by side on `Parallel.threadCount` threads when
    /// OpenBLAS is single-threaded (OpenBLAS' pthread build is safe for concurrent calls),
    /// one after another otherwise (each call is then threaded by OpenBLAS).
    public static func forEachIndependent(_ count: Int, threads: Int = Parallel.threadCount, _ body: (Int) -> Void) {
        if runsIndependentCalls && threads > 1 {
            Parallel.forEachChunk(count, maxChunks: threads) { _, range in for i in range { body(i) } }
        } else {
            for i in 0..<count { body(i) }
        }
    }

    /// Stops OpenBLAS's thread pool, which it starts when it is loaded: each idle worker spins
    /// (sched_yield) for 2^28 cycles, about 100 ms, before it sleeps, which on a 2-core machine
    /// takes one core from the first 100 ms of every command. Sets OpenBLAS to one thread first;
    /// OpenBLAS starts the pool again when `setThreadCount` asks it for more (`.threadedCalls`).
    /// Call at start, before any BLAS call and before other threads exist; the pool stays where
    /// the OpenBLAS lacks blas_thread_shutdown_.
    public static func stopIdleThreadPool() {
        setThreadCount(1)
        guard let shutdown = dlsym(nil, "blas_thread_shutdown_") else { return }
        typealias Entry = @convention(c) () -> Int32
        _ = unsafeBitCast(shutdown, to: Entry.self)()
    }

    /// The number of threads OpenBLAS currently uses.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// The build configuration string of the loaded OpenBLAS (version, core, threading).
    public static var configuration: String {
        guard let config = openblas_get_config() else { return "unknown" }
        return String(cString: config)
    }

    /// The CPU core type OpenBLAS selected at load time (e.g. "Zen", "Haswell").
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Row-major single-precision GEMM: C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C.
    ///
    /// Leading dimensions are in elements. `beta == 0` overwrites C without reading it.
    @inlinable
    public static func sgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        _sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    @usableFromInline
    static func _sgemm(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        precondition(k >= 0 && lda >= 1 && ldb >= 1 && ldc >= n, "sgemm: invalid dimensions")
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha,
            a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc)
        )
    }
}
