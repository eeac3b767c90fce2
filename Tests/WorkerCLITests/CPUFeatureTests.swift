import Testing
import SegPlatform

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
}
