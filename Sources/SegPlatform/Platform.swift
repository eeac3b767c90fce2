internal import CRdKafka
internal import CSystemd
internal import CLibPNG
internal import Foundation
public import SegKernels

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

    /// Number of CPUs this process may run on.
    public static var availableCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// CPU features the kernels were compiled for (empty for a portable build).
    public static var kernelCPUFeatures: [String] {
        #if UNIVERSEG_KERNELS_AVX2
        return ["avx2", "fma"]
        #else
        return []
        #endif
    }

    /// The features of `kernelCPUFeatures` this CPU lacks, from the `flags` line of
    /// /proc/cpuinfo (empty when all are present or when /proc/cpuinfo cannot be read).
    public static func missingKernelCPUFeatures(cpuinfo path: String = "/proc/cpuinfo") -> [String] {
        let required = kernelCPUFeatures
        guard !required.isEmpty, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return missingFeatures(required, cpuinfo: text)
    }

    /// The entries of `required` that the first `flags` line of a /proc/cpuinfo text lacks.
    public static func missingFeatures(_ required: [String], cpuinfo text: String) -> [String] {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        let flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        return required.filter { !flags.contains($0) }
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
