import Foundation
import Testing
import SegKernels
import SegPlatform
import SegTesting

/// CPU features: the OpenBLAS core the worker picks, and the vector-kernel build `version` names.
@Suite struct CPUFeatureTests {
    @Test func missingFeaturesAreReadFromTheFlagsLine() {
        let old = "processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx\n\nprocessor\t: 1\nflags\t\t: fpu avx2 fma\n"
        #expect(Platform.missingFeatures(["avx2", "fma"], cpuinfo: old) == ["avx2", "fma"])
        let partial = "flags\t\t: fpu sse2 fma avx\n"
        #expect(Platform.missingFeatures(["avx2", "fma"], cpuinfo: partial) == ["avx2"])
        let modern = "flags\t\t: fpu sse2 avx avx2 fma bmi2\n"
        #expect(Platform.missingFeatures(["avx2", "fma"], cpuinfo: modern).isEmpty)
        // "avx512fma" must not count as "fma": flags are whole words.
        #expect(Platform.missingFeatures(["fma"], cpuinfo: "flags\t: avx512fma\n") == ["fma"])
    }

    @Test func theBestOpenBLASCoreFollowsTheFlags() {
        let sapphire = "flags\t: fpu avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl avx512_bf16\n"
        #expect(Platform.openBLASCore(cpuinfo: sapphire) == "Cooperlake")
        let skylake = "flags\t: fpu avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl\n"
        #expect(Platform.openBLASCore(cpuinfo: skylake) == "SkylakeX")
        #expect(Platform.openBLASCore(cpuinfo: "flags\t: fpu avx2 fma avx512f\n") == "Haswell", "AVX-512F alone is not SkylakeX")
        #expect(Platform.openBLASCore(cpuinfo: "flags\t: fpu sse4_2 avx\n") == nil)
        #expect(Platform.openBLASCore(cpuinfo: "model name\t: no flags line\n") == nil)
    }

    @Test func aRestartIsChosenOnlyForAGenericCoreAndOnlyOnce() {
        let avx2 = "flags\t: fpu avx2 fma\n"
        #expect(Platform.betterOpenBLASCore(environment: [:], loadedCore: "Prescott", cpuinfo: avx2) == "Haswell")
        #expect(Platform.betterOpenBLASCore(environment: [:], loadedCore: "Haswell", cpuinfo: avx2) == nil, "OpenBLAS knew the CPU")
        #expect(Platform.betterOpenBLASCore(environment: [:], loadedCore: "Zen", cpuinfo: avx2) == nil)
        #expect(Platform.betterOpenBLASCore(environment: ["OPENBLAS_CORETYPE": "Prescott"], loadedCore: "Prescott", cpuinfo: avx2) == nil,
                "a user's choice is kept")
        #expect(Platform.betterOpenBLASCore(environment: [:], loadedCore: "Prescott", cpuinfo: "flags\t: fpu sse2\n") == nil)
    }

    /// The binary by default (no OPENBLAS_CORETYPE, no UNIVERSEG_OPENBLAS_AUTOCORE): on a CPU with
    /// AVX2 it never runs on a generic core (OpenBLAS's own choice when it knows the CPU, else the
    /// restart's).
    @Test func theBinaryNeverRunsAGenericCoreWhereABetterOneExists() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard Platform.openBLASCore(cpuinfo: cpuinfo) != nil else { return }  // nothing better on this CPU
        let r = try runToCompletion("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE",
                                                     "-u", Platform.openBLASAutoCoreSwitch, Worker.executable, "version"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("OpenBLAS ") && $0.contains("(core ") })
        let core = String(line[line.range(of: "(core ")!.upperBound...].dropLast())
        #expect(!["prescott", "core2", "nehalem", "katmai", "atom"].contains(core.lowercased()), "\(r.stdout)")
    }

    /// UNIVERSEG_OPENBLAS_AUTOCORE=0 keeps OpenBLAS's own choice: no restart, and `version` does
    /// not claim the worker chose the core.
    @Test func theAutomaticCoreChoiceCanBeTurnedOff() throws {
        let r = try runToCompletion("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE",
                                                     "\(Platform.openBLASAutoCoreSwitch)=0", Worker.executable, "version"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("chosen by universeg-worker"), "\(r.stdout)")
    }

    /// `version` names the vector kernels it runs: the best build this CPU supports, or the one
    /// UNIVERSEG_KERNELS names.
    @Test func versionNamesTheVectorKernels() throws {
        let best = try runToCompletion("/usr/bin/env", ["-u", "UNIVERSEG_KERNELS", Worker.executable, "version"])
        #expect(best.status == 0, "\(best.stderr)")
        let expected = try #require(KernelISA.supportedHere.max())
        #expect(best.stdout.contains("vector kernels: \(expected.name) ("), "\(best.stdout)")
        let portable = try runToCompletion("/usr/bin/env", ["UNIVERSEG_KERNELS=portable", Worker.executable, "version"])
        #expect(portable.stdout.contains("vector kernels: x86-64 ("), "\(portable.stdout)")
    }

    @Test func cpuListsAreCounted() {
        #expect(Platform.cpuListCount("0-1") == 2)
        #expect(Platform.cpuListCount(" 0-3,8,10-11\t") == 7)
        #expect(Platform.cpuListCount("5") == 1)
        for bad in ["", "a", "3-1", "1-", "-1", "1-2-3", "1,,2"] {
            #expect(Platform.cpuListCount(bad) == nil, "\(bad)")
        }
    }

    /// `inference.threads` 0 and the commands' default thread counts follow the affinity mask
    /// (taskset, systemd CPUAffinity=), not the machine's core count.
    @Test func availableCoresFollowTheAffinityMask() throws {
        let all = try #require(Platform.affinityCPUCount())
        #expect(all >= 1 && all <= ProcessInfo.processInfo.processorCount)
        #expect(Platform.availableCores == min(all, Platform.onlineCores))
        // The binary, pinned by taskset (util-linux) to one CPU of our mask, counts one core;
        // given our whole mask, it counts what we count.
        let list = try #require(Platform.affinityCPUList(status: "/proc/self/status"))
        let first = try #require(Int(list.prefix { $0.isNumber }))
        for (cpus, expected) in [("\(first)", 1), (list, all)] {
            let result = try Worker.run(["version"], launcher: ["/usr/bin/taskset", "-c", cpus])
            #expect(result.status == 0)
            #expect(result.stdout.contains("cores usable: \(min(expected, Platform.onlineCores)) "), "\(cpus): \(result.stdout)")
        }
    }
}
