public import SegSIMDInterface
internal import Synchronization
internal import SegSIMDPortable
internal import SegSIMDAVX2
internal import SegSIMDAVX512
#if canImport(Glibc)
internal import Glibc
#endif

/// The builds of the vector kernels in this binary (Winograd transforms, resampling), chosen at
/// start by the CPU's features: every x86-64 CPU runs `portable` (SSE2); `avx2` needs AVX2, FMA,
/// BMI1/2, F16C and MOVBE (Intel Haswell, 2013, and later; every AMD Zen); `avx512` adds AVX-512
/// F/CD/BW/DQ/VL (Intel Skylake-SP and later servers, AMD Zen 4 and later).
public enum KernelISA: String, CaseIterable, Sendable, Comparable {
    case portable
    case avx2
    case avx512

    /// The `/proc/cpuinfo` flags each build needs.
    public var requiredFlags: [String] {
        switch self {
        case .portable: return []
        case .avx2: return ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"]
        case .avx512: return KernelISA.avx2.requiredFlags + ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        }
    }

    /// How `version` and `bench` name it; each build names itself the same way
    /// (`SIMDKernelSet.instructionSet`), which is only read where the CPU runs that build.
    public var name: String {
        switch self {
        case .portable: return "x86-64"
        case .avx2: return "AVX2+FMA"
        case .avx512: return "AVX-512"
        }
    }

    /// The builds a CPU with this `/proc/cpuinfo` text runs, in increasing order. Only the first
    /// `flags` line is read (all cores of a machine have the same); a text without one gives
    /// `[.portable]`.
    public static func supported(cpuinfo text: String) -> [KernelISA] {
        #if arch(x86_64)
        guard let flags = cpuFlags(cpuinfo: text) else { return [.portable] }
        return allCases.filter { $0.requiredFlags.allSatisfy(flags.contains) }
        #else
        return [.portable]
        #endif
    }

    /// The words of the first `flags` line of a /proc/cpuinfo text, or nil when it has none.
    public static func cpuFlags(cpuinfo text: String) -> Set<String>? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return nil }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// The builds this machine runs.
    public static let supportedHere: [KernelISA] = {
        return supported(cpuinfo: readSmallFile("/proc/cpuinfo") ?? "")
    }()

    /// A text file of at most 1 MiB (this module does not use Foundation), or nil.
    static func readSmallFile(_ path: String) -> String? {
        #if canImport(Glibc)
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }

    /// Names `UNIVERSEG_KERNELS` accepts: a build to use instead of the best one (for
    /// comparisons and tests; a build this CPU cannot run is refused).
    public static let environmentVariable = "UNIVERSEG_KERNELS"

    /// The build to run: the best this CPU supports, or the one `UNIVERSEG_KERNELS` names.
    /// `note` says why, when the variable was set but could not be followed.
    public static func choose(environment value: String?, supported: [KernelISA]) -> (isa: KernelISA, note: String?) {
        let best = supported.max() ?? .portable
        guard let value, !value.isEmpty else { return (best, nil) }
        guard let requested = KernelISA(rawValue: value.lowercased()) else {
            return (best, "\(environmentVariable)=\(value) is not one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard supported.contains(requested) else {
            return (best, "\(environmentVariable)=\(value): this CPU cannot run the \(requested.name) kernels")
        }
        return (requested, nil)
    }

    private static let choice: (isa: KernelISA, note: String?) = {
        let value = getenv(environmentVariable).map { String(cString: $0) }
        return choose(environment: value, supported: supportedHere)
    }()

    private static let activeIndex = Atomic<Int>(allCases.firstIndex(of: choice.isa) ?? 0)

    /// The build every kernel uses unless told otherwise. Set only to a build of `supportedHere`
    /// (tests and benchmarks compare the builds; all give the same results up to rounding).
    public static var active: KernelISA {
        get { allCases[activeIndex.load(ordering: .relaxed)] }
        set {
            precondition(supportedHere.contains(newValue), "this CPU cannot run the \(newValue.name) kernels")
            activeIndex.store(allCases.firstIndex(of: newValue) ?? 0, ordering: .relaxed)
        }
    }

    /// Why `UNIVERSEG_KERNELS` was not followed, or nil.
    public static var choiceNote: String? { choice.note }

    /// The kernels of this build.
    public var kernels: any SIMDKernelSet.Type {
        switch self {
        case .portable: return SegSIMDPortable.Kernels.self
        case .avx2: return SegSIMDAVX2.Kernels.self
        case .avx512: return SegSIMDAVX512.Kernels.self
        }
    }

    public static func < (a: KernelISA, b: KernelISA) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
