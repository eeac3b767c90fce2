import Foundation
import SegDaemon
import SegOperations
import SegTesting
import Testing

enum Promtool {
    static let path: String? = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Deploy/monitoring: the Prometheus alerting rules pass `promtool check rules` and their unit tests
/// (`promtool test rules`), and every metric the rules and the Grafana dashboard use is one the
/// worker exports.
@Suite(.enabled(if: Promtool.path != nil, "promtool is not installed (apt-get install prometheus)"))
struct MonitoringTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Deploy/monitoring").path

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let r = try runToCompletion(try #require(Promtool.path), arguments, currentDirectory: directory, combineOutput: true)
        return (r.status, r.stdout)
    }

    @Test func rulesAreValidAndTheirUnitTestsPass() throws {
        let check = try Self.run(["check", "rules", "universeg-worker.rules.yml"])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("SUCCESS: 8 rules found"), "\(check.output)")
        let test = try Self.run(["test", "rules", "universeg-worker.rules.test.yml"])
        #expect(test.status == 0, "\(test.output)")
    }

    /// Metric names in a PromQL text: universeg_* and process_* (Prometheus's own `up` aside).
    static func metricNames(in text: String) -> Set<String> {
        let regex = try! NSRegularExpression(pattern: #"\b(universeg_[a-z_]+|process_[a-z_]+)\b"#)
        let range = NSRange(text.startIndex..., in: text)
        return Set(regex.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
    }

    @Test func everyMetricTheRulesAndTheDashboardUseIsExported() throws {
        let metrics = WorkerMetrics(modelName: "m", modelSHA256: "0")
        var exported: Set<String> = []
        for line in metrics.registry.render().split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            let name = String(parts[2])
            exported.insert(name)
            if parts[3] == "histogram" { exported.formUnion([name + "_bucket", name + "_sum", name + "_count"]) }
        }
        let rules = try String(contentsOfFile: Self.directory + "/universeg-worker.rules.yml", encoding: .utf8)
        let dashboardData = try Data(contentsOf: URL(fileURLWithPath: Self.directory + "/universeg-worker.grafana.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: dashboardData) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        #expect(panels.count >= 8)
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= panels.count)
        let used = Self.metricNames(in: rules).union(expressions.flatMap { Self.metricNames(in: $0) })
        #expect(used.contains("universeg_dependency_up") && used.contains("universeg_consumer_lag"))
        #expect(used.subtracting(exported).isEmpty, "used but not exported: \(used.subtracting(exported).sorted())")
        // The alerts an operator needs are all there.
        for alert in ["UniversegWorkerDown", "UniversegNoProgress", "UniversegConsumerLagGrowing", "UniversegDeadLetterRateHigh",
                      "UniversegDependencyDown", "UniversegWorkerUnhealthy"] {
            #expect(rules.contains("alert: \(alert)"), "missing alert \(alert)")
        }
    }
}
