import Foundation
import SegTesting
import Testing

/// Scripts/package on the binary of this build (`--binary`, no Swift build): the .deb's files,
/// conffiles, Depends and maintainer scripts, checked with dpkg-deb; lintian when it is installed.
/// The test build links the toolchain's shared Swift runtime, hence `--allow-shared-swift-runtime`;
/// the release package (`Scripts/package` without `--binary`) links it statically.
@Suite(.serialized) struct DebianPackageTests {
    static let script = Deploy.root + "/Scripts/package"
    static let version = "0.0.1~test"

    static func tool(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (path + ["/usr/bin", "/bin"]).map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Builds the package into `scratch`; returns its path and the script's result.
    static func package(_ scratch: Scratch, lintian: Bool) throws -> (deb: String, result: ProcessResult) {
        var arguments = [script, "--binary", Worker.executable, "--version", version, "--output", scratch.path,
                         "--allow-shared-swift-runtime", "--compress", "gzip"]
        if !lintian { arguments.append("--no-lintian") }
        let r = try Deploy.run("/bin/bash", arguments)
        return (scratch.path + "/universeg-worker_\(version)_amd64.deb", r)
    }

    @Test func packageHasTheLayoutConffilesDependsAndScripts() throws {
        try #require(Self.tool("dpkg-deb") != nil && Self.tool("dpkg-shlibdeps") != nil, "dpkg-dev is not installed")
        let s = try Scratch(prefix: "universeg-deb")
        let (deb, r) = try Self.package(s, lintian: false)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: deb), "\(r.stdout)")

        // Files: everything under /usr (units in /usr/lib/systemd/system) and the one conffile in /etc.
        let list = try Deploy.run("/usr/bin/dpkg-deb", ["-c", deb])
        #expect(list.status == 0, "\(list.stderr)")
        let entries = list.stdout.split(separator: "\n").map(String.init)
        let files = entries.compactMap { line -> String? in
            guard line.hasPrefix("-") else { return nil }
            return line.split(separator: " ", omittingEmptySubsequences: true).last.map { String($0.dropFirst()) }
        }
        // The manual page comes from help2man, when it is installed.
        let manual: Set<String> = Self.tool("help2man") != nil ? ["/usr/share/man/man1/universeg-worker.1.gz"] : []
        #expect(Set(files).subtracting(manual) == [
            "/usr/bin/universeg-worker",
            "/usr/lib/universeg-worker/libUniverSegDCMTK.so",
            "/usr/lib/systemd/system/universeg-worker.service",
            "/usr/lib/systemd/system/universeg-worker@.service",
            "/usr/lib/sysusers.d/universeg-worker.conf",
            "/usr/lib/tmpfiles.d/universeg-worker.conf",
            "/usr/share/universeg-worker/universeg-cpu.safetensors",
            "/usr/share/universeg-worker/MODEL_CARD.md",
            "/usr/share/universeg-worker/universeg-worker.json",
            "/usr/share/universeg-worker/universeg-worker.env.example",
            "/usr/share/universeg-worker/README.md",
            "/usr/share/doc/universeg-worker/copyright",
            "/usr/share/doc/universeg-worker/changelog.gz",
            "/etc/universeg-worker/worker.json",
        ], "\(list.stdout)")
        #expect(manual.isSubset(of: Set(files)), "\(list.stdout)")
        #expect(entries.allSatisfy { $0.contains(" root/root ") }, "\(list.stdout)")
        #expect(entries.contains { $0.hasPrefix("-rwxr-xr-x ") && $0.hasSuffix("./usr/bin/universeg-worker") })
        #expect(entries.contains { $0.hasPrefix("-rw-r--r-- ") && $0.hasSuffix("./usr/lib/universeg-worker/libUniverSegDCMTK.so") })

        // Control fields: Depends comes from the NEEDED libraries of the binary and of the DICOM
        // library (dpkg-shlibdeps): libdcmtk17 only through the latter.
        let info = try Deploy.run("/usr/bin/dpkg-deb", ["-f", deb, "Package", "Version", "Architecture", "Depends"])
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("Package: universeg-worker\n"))
        #expect(info.stdout.contains("Version: \(Self.version)\n"))
        #expect(info.stdout.contains("Architecture: amd64\n"))
        let depends = info.stdout.split(separator: "\n").first { $0.hasPrefix("Depends: ") }.map(String.init) ?? ""
        for library in ["libc6", "librdkafka1", "libopenblas0", "libpng16-16", "libsystemd0", "libdcmtk17", "libstdc++6",
                        "systemd | systemd-standalone-sysusers"] {
            #expect(depends.contains(library), "\(library) in \(depends)")
        }
        #expect(!depends.contains("swift"), "\(depends)")

        // Control archive: conffiles and maintainer scripts.
        let control = s.path + "/control"
        let extract = try Deploy.run("/usr/bin/dpkg-deb", ["-e", deb, control])
        #expect(extract.status == 0, "\(extract.stderr)")
        #expect(try String(contentsOfFile: control + "/conffiles", encoding: .utf8) == "/etc/universeg-worker/worker.json\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(FileManager.default.isExecutableFile(atPath: control + "/" + script), "\(script)")
            let syntax = try Deploy.run("/bin/sh", ["-n", control + "/" + script])
            #expect(syntax.status == 0, "\(script): \(syntax.stderr)")
            let text = try String(contentsOfFile: control + "/" + script, encoding: .utf8)
            #expect(text.hasPrefix("#!/bin/sh\n") && text.contains("\nset -e\n"), "\(script)")
            // Nothing is enabled or started by the package (comments may say how to).
            let code = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
            for forbidden in ["systemctl enable", "systemctl start", "deb-systemd-helper enable", "deb-systemd-invoke start"] {
                #expect(!code.contains { $0.contains(forbidden) }, "\(script) runs \(forbidden)")
            }
        }
        let postinst = try String(contentsOfFile: control + "/postinst", encoding: .utf8)
        #expect(postinst.contains("systemd-sysusers") && postinst.contains("systemd-tmpfiles") && postinst.contains("--create"))
        #expect(postinst.contains("[ -d /run/systemd/system ]"), "systemctl only where systemd runs")
        let postrm = try String(contentsOfFile: control + "/postrm", encoding: .utf8)
        #expect(postrm.contains("purge)") && postrm.contains("/etc/universeg-worker"))

        // Payload: units run /usr/bin/universeg-worker; the weights sit where DefaultWeights looks
        // (<exe dir>/../share/universeg-worker/); the binary has no build-host RUNPATH.
        let root = s.path + "/root"
        let x = try Deploy.run("/usr/bin/dpkg-deb", ["-x", deb, root])
        #expect(x.status == 0, "\(x.stderr)")
        for unit in ["universeg-worker.service", "universeg-worker@.service"] {
            let text = try String(contentsOfFile: root + "/usr/lib/systemd/system/" + unit, encoding: .utf8)
            #expect(text.contains("\nExecStart=/usr/bin/universeg-worker serve --config /etc/universeg-worker/"), "\(unit)")
            #expect(!text.contains("/usr/local/bin"), "\(unit)")
        }
        #expect(FileManager.default.contentsEqual(
            atPath: root + "/usr/bin/../share/universeg-worker/universeg-cpu.safetensors",
            andPath: Deploy.root + "/Config/models/universeg-cpu.safetensors"))
        #expect(FileManager.default.contentsEqual(atPath: root + "/etc/universeg-worker/worker.json",
                                                  andPath: Deploy.root + "/Config/universeg-worker.json"))
        if let objdump = Self.tool("objdump") {
            let dynamic = try Deploy.run(objdump, ["-p", root + "/usr/bin/universeg-worker"])
            #expect(!dynamic.stdout.contains("RUNPATH") && !dynamic.stdout.contains("RPATH"), "\(dynamic.stdout)")
        }
    }

    /// lintian (when installed): no errors. Its warnings are printed by the script.
    @Test func lintianFindsNoErrors() throws {
        try #require(Self.tool("dpkg-deb") != nil && Self.tool("dpkg-shlibdeps") != nil, "dpkg-dev is not installed")
        guard let lintian = Self.tool("lintian") else {
            print("lintian is not installed (apt-get install lintian): skipped")
            return
        }
        let s = try Scratch(prefix: "universeg-deb")
        let (deb, r) = try Self.package(s, lintian: false)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let l = try Deploy.run(lintian, ["--fail-on", "error", deb])
        #expect(l.status == 0, "\(l.stdout)\(l.stderr)")
        #expect(!l.stdout.split(separator: "\n").contains { $0.hasPrefix("E: ") }, "\(l.stdout)")
    }

    @Test(arguments: [["--version", "latest"], ["--binary", "/nonexistent/universeg-worker"], ["--frobnicate"]])
    func badArgumentsFailBeforePackaging(arguments: [String]) throws {
        let s = try Scratch(prefix: "universeg-deb")
        let r = try Deploy.run("/bin/bash", [Self.script, "--output", s.path, "--no-lintian"] + arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains("error:"), "\(r.stderr)")
        #expect(s.files(in: ".").isEmpty)
    }
}
