import Foundation
import Testing
import SegPlatform
import SegTesting

/// The start-up check that keeps an AVX2 build off CPUs without AVX2/FMA (SIGILL otherwise).
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

    @Test func thisMachineRunsThisBuildsKernels() {
        // The tests run the kernels, so the machine that runs them must have what they need.
        #expect(Platform.missingKernelCPUFeatures().isEmpty)
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
