internal import CRdKafka
internal import CSystemd
internal import CLibPNG
internal import Foundation
internal import SegKernels
internal import Synchronization

/// Facts about the process and the C libraries it runs on.
public enum Platform {
    /// Version of the librdkafka loaded at run time (may differ from the headers it was built with).
    public static var rdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

    /// Version of the loaded libpng.
    public static var libpngVersion: String { String(cString: png_get_libpng_ver(nil)) }

    /// Whether the system was booted with systemd (sd_booted).
    public static var bootedWithSystemd: Bool { sd_booted() > 0 }

    /// OpenBLAS build configuration and selected core.
    public static var openBLAS: String { "\(BLAS.configuration) (core \(BLAS.coreName))" }

    /// The OpenBLAS core in use (its kernel table), e.g. "Cooperlake".
    public static var openBLASCore: String { BLAS.coreName }

    /// Who chose the OpenBLAS core: OPENBLAS_CORETYPE from the environment, universeg-worker
    /// (see `chooseBetterOpenBLASCoreIfNeeded`), or OpenBLAS itself from the CPU model.
    public static var openBLASCoreOrigin: String {
        if let fallback = openBLASReplacedCore {
            return "chosen by universeg-worker (OpenBLAS picked \(fallback), a generic core, for this CPU)"
        }
        if let core = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            return "OPENBLAS_CORETYPE=\(core) from the environment"
        }
        return "OpenBLAS's own choice for this CPU"
    }

    /// Number of CPUs online (Foundation's `activeProcessorCount`).
    public static var onlineCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Number of CPUs this process may run on: the CPUs of the calling thread's affinity mask
    /// (`taskset`, systemd's `CPUAffinity=`, cpusets), at most `activeProcessorCount`. Foundation's
    /// count alone ignores the mask, so a worker pinned to 2 of 8 cores would start 8 threads.
    public static var availableCores: Int {
        let online = onlineCores
        guard let pinned = affinityCPUCount() else { return online }
        return max(1, min(pinned, online))
    }

    /// CPUs in the calling thread's affinity mask, nil when it cannot be read.
    public static func affinityCPUCount(status path: String = "/proc/thread-self/status") -> Int? {
        affinityCPUList(status: path).flatMap(cpuListCount)
    }

    /// The calling thread's affinity mask as a Linux CPU list ("0-3,8"): the `Cpus_allowed_list`
    /// line of /proc/thread-self/status, nil when it cannot be read.
    public static func affinityCPUList(status path: String = "/proc/thread-self/status") -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let key = "Cpus_allowed_list:"
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
        return line.dropFirst(key.count).trimmingCharacters(in: .whitespaces)
    }

    /// Number of CPUs in a Linux CPU list such as "0-3,8,10-11" (nil when malformed or empty).
    public static func cpuListCount(_ list: String) -> Int? {
        var count = 0
        for part in list.trimmingCharacters(in: .whitespaces).split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let lo = Int(bounds[0]), lo >= 0 else { return nil }
            let hi = bounds.count == 2 ? Int(bounds[1]) : lo
            guard let hi, hi >= lo else { return nil }
            count += hi - lo + 1
        }
        return count > 0 ? count : nil
    }

    /// The entries of `required` that the first `flags` line of a /proc/cpuinfo text lacks.
    public static func missingFeatures(_ required: [String], cpuinfo text: String) -> [String] {
        guard let flags = KernelISA.cpuFlags(cpuinfo: text) else { return [] }
        return required.filter { !flags.contains($0) }
    }

    /// The cores OpenBLAS (DYNAMIC_ARCH) falls back to on a CPU model it does not know: generic
    /// SSE-era kernels. Debian's OpenBLAS 0.3.21 picks "Prescott" on an Intel Xeon of family 6,
    /// model 207, where its AVX-512 core runs the v1 network 2.7x faster (bench, N=16, 2 threads:
    /// 594 ms Prescott, 222 ms Cooperlake).
    static let genericOpenBLASCores: Set<String> = [
        "prescott", "katmai", "coppermine", "northwood", "banias", "core2", "penryn", "dunnington", "nehalem", "atom",
    ]

    /// The fastest OpenBLAS core this CPU can run, from the `flags` line of /proc/cpuinfo:
    /// Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512 F/CD/BW/DQ/VL), Haswell (AVX2 + FMA), or nil.
    public static func openBLASCore(cpuinfo text: String) -> String? {
        let avx512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        if missingFeatures(avx512 + ["avx512_bf16"], cpuinfo: text).isEmpty, hasFlags(text) { return "Cooperlake" }
        if missingFeatures(avx512, cpuinfo: text).isEmpty, hasFlags(text) { return "SkylakeX" }
        if missingFeatures(["avx2", "fma"], cpuinfo: text).isEmpty, hasFlags(text) { return "Haswell" }
        return nil
    }

    private static func hasFlags(_ text: String) -> Bool { KernelISA.cpuFlags(cpuinfo: text) != nil }

    /// The core to switch OpenBLAS to, or nil: only when nobody chose one (OPENBLAS_CORETYPE is
    /// unset), OpenBLAS fell back to a generic core, and the CPU can run a better one.
    public static func betterOpenBLASCore(environment: [String: String], loadedCore: String, cpuinfo: String) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, genericOpenBLASCores.contains(loadedCore.lowercased()) else { return nil }
        return openBLASCore(cpuinfo: cpuinfo)
    }

    /// Turns the automatic core choice off when set to `0` (it is on by default).
    public static let openBLASAutoCoreSwitch = "UNIVERSEG_OPENBLAS_AUTOCORE"

    /// The core OpenBLAS had picked itself when `chooseBetterOpenBLASCoreIfNeeded` replaced it.
    public static var openBLASReplacedCore: String? { replacedCore.withLock { $0 } }
    private static let replacedCore = Mutex<String?>(nil)

    /// Unless `UNIVERSEG_OPENBLAS_AUTOCORE=0`: where `betterOpenBLASCore` names a core, selects it
    /// in this process. A DYNAMIC_ARCH OpenBLAS picks its kernel table once, when it is loaded,
    /// from OPENBLAS_CORETYPE or the CPU model (gotoblas_dynamic_init); clearing the table
    /// (gotoblas_dynamic_quit) and running that selection again with OPENBLAS_CORETYPE set is what
    /// loading it with the variable set does. Call first thing in main, before any BLAS call and
    /// after `BLAS.stopIdleThreadPool()` (no OpenBLAS thread may run while the table is rebuilt).
    /// Without those two functions (an OpenBLAS built for one CPU) nothing changes.
    public static func chooseBetterOpenBLASCoreIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard environment[openBLASAutoCoreSwitch] != "0", let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let core = betterOpenBLASCore(environment: environment, loadedCore: BLAS.coreName, cpuinfo: cpuinfo),
              let initialize = dlsym(nil, "gotoblas_dynamic_init"), let quit = dlsym(nil, "gotoblas_dynamic_quit") else { return }
        typealias Entry = @convention(c) () -> Void
        let picked = BLAS.coreName
        func select(_ name: String) {
            setenv("OPENBLAS_CORETYPE", name, 1)
            unsafeBitCast(quit, to: Entry.self)()
            unsafeBitCast(initialize, to: Entry.self)()
            unsetenv("OPENBLAS_CORETYPE")
        }
        select(core)
        if BLAS.coreName.lowercased() == core.lowercased() {
            replacedCore.withLock { $0 = picked }
        } else {
            select(picked)  // this OpenBLAS does not know the name: back to its own choice
        }
    }

    /// Milliseconds since this process started (its start time in /proc/self/stat against
    /// /proc/uptime; 10 ms resolution), nil without /proc.
    public static var processAgeMilliseconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command name: field 3 (state) onwards; field 22 is the start time in ticks.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = Double(fields[19]),
              let up = uptime.split(separator: " ").first.flatMap({ Double($0) }) else { return nil }
        return (up - start / Double(sysconf(Int32(_SC_CLK_TCK)))) * 1000
    }

    /// Peak resident set size of this process (VmHWM), in bytes; nil where /proc is unavailable.
    public static var peakResidentBytes: Int? { statusField("VmHWM:") }

    /// Current resident set size (VmRSS), in bytes.
    public static var residentBytes: Int? { statusField("VmRSS:") }

    private static func statusField(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}
