import Foundation
import SegTesting
import Testing

/// Deploy/: the systemd units, sysusers/tmpfiles entries and install.sh of this checkout.
enum Deploy {
    /// Tests/WorkerCLITests/DeployUnitsTests.swift -> package root.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let directory = root + "/Deploy"
    static let installedBinary = "/usr/local/bin/universeg-worker"

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: directory + "/" + relative, encoding: .utf8)
    }

    /// `systemd-analyze` from the `systemd` package (Scripts/lib/ensure-deps.sh installs it).
    static var systemdAnalyze: String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (["/usr/bin", "/bin"] + path).map { $0 + "/systemd-analyze" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The directive lines of a unit file: no comments, no blank lines.
    static func directives(_ unit: String) -> [String] {
        unit.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") && !$0.hasPrefix(";") }
    }

    /// `unit` with ExecStart= pointing at `executable` instead of /usr/local/bin, which does not
    /// exist where the tests run (systemd-analyze verify checks that the binary is executable).
    static func withExecutable(_ unit: String, _ executable: String) -> String {
        var path = executable.replacingOccurrences(of: "%", with: "%%")
        if path.contains(" ") { path = "\"\(path)\"" }
        return unit.replacingOccurrences(of: "\nExecStart=\(installedBinary) ", with: "\nExecStart=\(path) ")
    }

    /// Runs `systemd-analyze verify` on `unit`, written to a fresh directory as `name`. Returns the
    /// exit status and every stderr line about this unit (parse warnings are not errors for
    /// systemd, so verify exits 0 on them; these lines are how they show).
    static func verify(_ unit: String, as name: String) throws -> (status: Int32, problems: [String], output: String) {
        let analyze = try #require(systemdAnalyze, "systemd-analyze not found: install the systemd package (Scripts/lib/ensure-deps.sh)")
        let scratch = try Scratch(prefix: "universeg-units")
        try scratch.write(name, Array(unit.utf8))
        let r = try run(analyze, ["verify", scratch.path + "/" + name])
        let problems = r.stderr.split(separator: "\n").map(String.init)
            .filter { $0.contains(name) || $0.contains(scratch.path) || $0.contains("universeg") }
        return (r.status, problems, r.stdout + r.stderr)
    }

    /// Runs a program to completion.
    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        try runToCompletion(executable, arguments)
    }
}

@Suite(.serialized) struct DeployUnitsTests {
    static let units = [("universeg-worker.service", "universeg-worker.service"),
                        ("universeg-worker@.service", "universeg-worker@test.service")]

    @Test(arguments: units)
    func unitPassesSystemdAnalyzeVerify(file: String, name: String) throws {
        let unit = try Deploy.text(file)
        #expect(unit.contains("\nExecStart=\(Deploy.installedBinary) serve --config /etc/universeg-worker/"))
        #expect(FileManager.default.isExecutableFile(atPath: Worker.executable), "\(Worker.executable)")
        let patched = Deploy.withExecutable(unit, Worker.executable)
        #expect(patched != unit)
        let r = try Deploy.verify(patched, as: name)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.problems.isEmpty, "\(r.output)")
    }

    /// The check above can fail: a broken line, an unknown key or a missing binary is reported.
    @Test(arguments: [
        ("Type=notify\n", "Type=notifyy\n"),
        ("WatchdogSec=60\n", "WatchdogSecs=60\n"),
        ("MemoryMax=4G\n", "MemoryMax=4Q\n"),
        ("[Service]\n", "[Servise]\n"),
    ])
    func verifyReportsABrokenLine(original: String, broken: String) throws {
        let unit = Deploy.withExecutable(try Deploy.text("universeg-worker.service"), Worker.executable)
        #expect(unit.contains(original))
        let r = try Deploy.verify(unit.replacingOccurrences(of: original, with: broken), as: "universeg-worker.service")
        #expect(r.status != 0 || !r.problems.isEmpty, "\(r.output)")
    }

    @Test func verifyReportsAMissingBinary() throws {
        let unit = Deploy.withExecutable(try Deploy.text("universeg-worker.service"), "/nonexistent/universeg-worker")
        let r = try Deploy.verify(unit, as: "universeg-worker.service")
        #expect(r.status != 0, "\(r.output)")
        #expect(r.problems.contains { $0.contains("/nonexistent/universeg-worker") }, "\(r.output)")
    }

    /// The template is the plain unit plus an instance name: same settings, per-instance paths.
    @Test func templateDiffersOnlyInInstancePaths() throws {
        let plain = Deploy.directives(try Deploy.text("universeg-worker.service"))
        var template = Deploy.directives(try Deploy.text("universeg-worker@.service"))
        #expect(template.contains("ExecStart=\(Deploy.installedBinary) serve --config /etc/universeg-worker/%i.json"))
        #expect(template.contains("EnvironmentFile=-/etc/universeg-worker/%i.env"))
        #expect(template.contains("LoadCredential=kafka-sasl-password:universeg-worker-%i.kafka-sasl-password"))
        template.removeAll { $0 == "LogExtraFields=UNIVERSEG_INSTANCE=%i" }
        let generic = template.map {
            $0.replacingOccurrences(of: "/etc/universeg-worker/%i.", with: "/etc/universeg-worker/worker.")
                .replacingOccurrences(of: "universeg-worker-%i.", with: "universeg-worker.")
                .replacingOccurrences(of: ", instance %i", with: "")
        }
        #expect(generic == plain)
        #expect(!generic.contains { $0.contains("%i") })
    }

    @Test func unitsHaveTheRequiredSettings() throws {
        let lines = Deploy.directives(try Deploy.text("universeg-worker.service"))
        for required in [
            "Type=notify", "NotifyAccess=main", "WatchdogSec=60", "Restart=on-failure", "KillSignal=SIGTERM",
            "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes",
            "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "SystemCallFilter=@system-service", "SyslogIdentifier=universeg-worker",
            "EnvironmentFile=-/etc/universeg-worker/worker.env",
            "ReadOnlyPaths=-/var/lib/universeg-worker/support-sets",
        ] {
            #expect(lines.contains(required), "\(required)")
        }
        func value(_ key: String) -> String? {
            lines.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(value("MemoryMax") != nil && value("LimitNOFILE") != nil && value("RestartSec") != nil)
        #expect(value("DynamicUser") == nil)

        // The user is the one sysusers.d creates, and tmpfiles.d gives the store to its group.
        let user = try #require(value("User"))
        let sysusers = Deploy.directives(try Deploy.text("sysusers.d/universeg-worker.conf"))
        #expect(sysusers.contains { $0.hasPrefix("u \(user) ") })
        let tmpfiles = Deploy.directives(try Deploy.text("tmpfiles.d/universeg-worker.conf"))
        #expect(tmpfiles.contains { $0.hasPrefix("d /var/lib/universeg-worker/support-sets ") && $0.contains(" \(user) ") })

        // systemd must not SIGKILL a worker that is still draining: TimeoutStopSec= above the
        // default inference.drain_timeout_s of the shipped config.
        let stop = try #require(value("TimeoutStopSec"))
        let stopSeconds = try #require(Double(stop.hasSuffix("s") ? String(stop.dropLast()) : stop), "\(stop)")
        let config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: Deploy.root + "/Config/universeg-worker.json"))) as? [String: Any]
        let drain = try #require(((config?["inference"] as? [String: Any])?["drain_timeout_s"] as? NSNumber)?.doubleValue)
        #expect(stopSeconds >= drain + 15, "TimeoutStopSec=\(stop), drain_timeout_s=\(drain)")
        // The whole stop: the drain, leaving the group (about 5 s when a rebalance is pending) and
        // the producer's flush deadline (10 s) end inside TimeoutStopSec, with 5 s to spare.
        let leaveSeconds = 5.0, flushSeconds = 10.0
        #expect(drain + leaveSeconds + flushSeconds + 5 <= stopSeconds, "TimeoutStopSec=\(stop), drain_timeout_s=\(drain)")
        // A stop that ends with work not acknowledged exits 75, which the unit counts as success.
        #expect(lines.contains("SuccessExitStatus=75"))
    }
}

@Suite(.serialized) struct InstallScriptTests {
    static let script = Deploy.directory + "/install.sh"

    static func install(_ arguments: [String]) throws -> ProcessResult {
        try Deploy.run("/bin/bash", [script, "--binary", Worker.executable] + arguments)
    }

    @Test func destdirInstallLaysOutTheFiles() throws {
        let s = try Scratch(prefix: "universeg-install")
        let r = try Self.install(["--destdir", s.path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let fm = FileManager.default
        for file in [
            "usr/local/bin/universeg-worker",
            "usr/local/share/universeg-worker/universeg-cpu.safetensors",
            "usr/local/share/universeg-worker/MODEL_CARD.md",
            "usr/local/share/universeg-worker/universeg-worker.json",
            "usr/local/share/universeg-worker/universeg-worker.env.example",
            "usr/local/share/universeg-worker/README.md",
            "usr/local/lib/systemd/system/universeg-worker.service",
            "usr/local/lib/systemd/system/universeg-worker@.service",
            "usr/local/lib/sysusers.d/universeg-worker.conf",
            "usr/local/lib/tmpfiles.d/universeg-worker.conf",
            "etc/universeg-worker/worker.json",
        ] {
            #expect(fm.fileExists(atPath: s.path + "/" + file), "\(file)")
        }
        #expect(fm.isExecutableFile(atPath: s.path + "/usr/local/bin/universeg-worker"))
        // The binary looks for the shipped weights at <exe dir>/../share/universeg-worker/.
        #expect(fm.contentsEqual(atPath: s.path + "/usr/local/bin/../share/universeg-worker/universeg-cpu.safetensors",
                                 andPath: Deploy.root + "/Config/models/universeg-cpu.safetensors"))
        #expect(fm.contentsEqual(atPath: s.path + "/etc/universeg-worker/worker.json",
                                 andPath: Deploy.root + "/Config/universeg-worker.json"))
        #expect(fm.contentsEqual(atPath: s.path + "/usr/local/lib/systemd/system/universeg-worker@.service",
                                 andPath: Deploy.directory + "/universeg-worker@.service"))
        let credstore = try fm.attributesOfItem(atPath: s.path + "/etc/credstore")
        #expect((credstore[.posixPermissions] as? Int) == 0o700)
        #expect(!fm.fileExists(atPath: s.path + "/var"), "a staged install creates no state directories")
        #expect(r.stdout.contains("systemd-sysusers"), "\(r.stdout)")

        // A second run replaces the files but keeps the operator's configuration.
        try s.write("etc/universeg-worker/worker.json", Array(#"{"kafka": {"brokers": "kafka-1:9093"}}"#.utf8))
        let again = try Self.install(["--destdir", s.path])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(again.stdout.contains("keeping the existing"))
        #expect(try String(contentsOfFile: s.path + "/etc/universeg-worker/worker.json", encoding: .utf8).contains("kafka-1:9093"))
    }

    @Test func prefixRewritesExecStart() throws {
        let s = try Scratch(prefix: "universeg-install")
        let r = try Self.install(["--destdir", s.path, "--prefix", "/usr"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.isExecutableFile(atPath: s.path + "/usr/bin/universeg-worker"))
        for unit in ["universeg-worker.service", "universeg-worker@.service"] {
            let text = try String(contentsOfFile: s.path + "/usr/lib/systemd/system/" + unit, encoding: .utf8)
            #expect(text.contains("\nExecStart=/usr/bin/universeg-worker serve --config /etc/universeg-worker/"), "\(unit)")
            #expect(!text.contains("/usr/local/bin"), "\(unit)")
        }
    }

    @Test func dryRunChangesNothing() throws {
        let s = try Scratch(prefix: "universeg-install")
        let r = try Self.install(["--destdir", s.path, "--dry-run"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(s.files(in: ".").isEmpty, "\(s.files(in: "."))")
        #expect(r.stdout.contains("would run: install -D -m 0755 \(Worker.executable) \(s.path)/usr/local/bin/universeg-worker"), "\(r.stdout)")
        #expect(r.stdout.contains("\(s.path)/usr/local/lib/systemd/system/universeg-worker@.service"), "\(r.stdout)")
        #expect(r.stdout.contains("\(s.path)/etc/universeg-worker/worker.json"), "\(r.stdout)")
    }

    @Test(arguments: [["--prefix", "relative"], ["--binary", "/nonexistent/universeg-worker", "--dry-run"], ["--frobnicate"]])
    func badArgumentsFailBeforeInstalling(arguments: [String]) throws {
        let s = try Scratch(prefix: "universeg-install")
        let r = try Deploy.run("/bin/bash", [Self.script, "--destdir", s.path] + arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains("error:"), "\(r.stderr)")
        #expect(s.files(in: ".").isEmpty)
    }
}
