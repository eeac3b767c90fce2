internal import Foundation
internal import Synchronization

/// A small, thread-safe Prometheus registry: counters, gauges and histograms with labels,
/// rendered in the text exposition format 0.0.4, and the same values as a JSON snapshot (for
/// the metrics topic). Families are registered once; each label combination is a series.
public final class MetricsRegistry: Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public typealias Labels = [(String, String)]

    struct SeriesKey: Hashable { let labels: [String] }  // "name=value" pairs, in order

    struct HistogramValue {
        var buckets: [UInt64]  // non-cumulative counts per upper bound
        var sum: Double = 0
        var count: UInt64 = 0
    }

    struct Family {
        let name: String
        let help: String
        let kind: Kind
        let bounds: [Double]
        var order: [SeriesKey] = []
        var labels: [SeriesKey: Labels] = [:]
        var values: [SeriesKey: Double] = [:]
        var histograms: [SeriesKey: HistogramValue] = [:]
    }

    private struct State {
        var families: [String: Family] = [:]
        var order: [String] = []
    }

    private let state = Mutex(State())
    private let collectors = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// Standard latency buckets in seconds (5 ms to 2 minutes).
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120]

    /// Registers (or returns the existing) family. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*.
    public func register(_ name: String, help: String, kind: Kind, buckets: [Double] = latencyBuckets) {
        precondition(Self.isValidName(name), "invalid metric name \(name)")  // names are compile-time constants
        state.withLock { s in
            guard s.families[name] == nil else { return }
            s.families[name] = Family(name: name, help: help, kind: kind, bounds: kind == .histogram ? buckets.sorted() : [])
            s.order.append(name)
        }
    }

    /// Adds `value` to a counter (or gauge).
    public func add(_ name: String, _ labels: Labels = [], _ value: Double = 1) {
        update(name, labels) { $0 += value }
    }

    /// Sets a gauge.
    public func set(_ name: String, _ labels: Labels, _ value: Double) {
        update(name, labels) { $0 = value }
    }

    /// Sets a gauge without labels.
    public func set(_ name: String, _ value: Double) {
        update(name, []) { $0 = value }
    }

    /// Replaces every series of a gauge family (e.g. per-partition lag, where partitions come and go).
    public func replaceAll(_ name: String, _ series: [(Labels, Double)]) {
        state.withLock { s in
            guard var family = s.families[name] else { return }
            family.order = []
            family.labels = [:]
            family.values = [:]
            for (labels, value) in series {
                let key = Self.key(labels)
                if family.labels[key] == nil { family.order.append(key) }
                family.labels[key] = labels
                family.values[key] = value
            }
            s.families[name] = family
        }
    }

    /// Records one observation in a histogram.
    public func observe(_ name: String, _ labels: Labels = [], _ value: Double) {
        guard value.isFinite else { return }
        state.withLock { s in
            guard var family = s.families[name], family.kind == .histogram else { return }
            let key = Self.key(labels)
            if family.labels[key] == nil {
                family.order.append(key)
                family.labels[key] = labels
            }
            var h = family.histograms[key] ?? HistogramValue(buckets: [UInt64](repeating: 0, count: family.bounds.count + 1))
            let index = family.bounds.firstIndex { value <= $0 } ?? family.bounds.count
            h.buckets[index] += 1
            h.sum += value
            h.count += 1
            family.histograms[key] = h
            s.families[name] = family
        }
    }

    /// Current value of a counter or gauge series (nil when absent).
    public func value(_ name: String, _ labels: Labels = []) -> Double? {
        state.withLock { $0.families[name]?.values[Self.key(labels)] }
    }

    /// Runs `collect` before each render/snapshot, to refresh gauges computed on demand.
    public func addCollector(_ collect: @escaping @Sendable () -> Void) {
        collectors.withLock { $0.append(collect) }
    }

    private func update(_ name: String, _ labels: Labels, _ change: (inout Double) -> Void) {
        state.withLock { s in
            guard var family = s.families[name], family.kind != .histogram else { return }
            let key = Self.key(labels)
            if family.labels[key] == nil {
                family.order.append(key)
                family.labels[key] = labels
            }
            var v = family.values[key] ?? 0
            change(&v)
            family.values[key] = v
            s.families[name] = family
        }
    }

    // MARK: - Output

    /// The Prometheus text exposition format (version 0.0.4).
    public func render() -> String {
        for collect in collectors.withLock({ $0 }) { collect() }
        return state.withLock { s in
            var out = ""
            for name in s.order {
                guard let f = s.families[name] else { continue }
                out += "# HELP \(name) \(Self.escapeHelp(f.help))\n# TYPE \(name) \(f.kind.rawValue)\n"
                for key in f.order {
                    let labels = f.labels[key] ?? []
                    if f.kind == .histogram {
                        guard let h = f.histograms[key] else { continue }
                        var cumulative: UInt64 = 0
                        for (i, bound) in f.bounds.enumerated() {
                            cumulative += h.buckets[i]
                            out += "\(name)_bucket\(Self.labelText(labels + [("le", Self.number(bound))])) \(cumulative)\n"
                        }
                        out += "\(name)_bucket\(Self.labelText(labels + [("le", "+Inf")])) \(h.count)\n"
                        out += "\(name)_sum\(Self.labelText(labels)) \(Self.number(h.sum))\n"
                        out += "\(name)_count\(Self.labelText(labels)) \(h.count)\n"
                    } else if let v = f.values[key] {
                        out += "\(name)\(Self.labelText(labels)) \(Self.number(v))\n"
                    }
                }
            }
            return out
        }
    }

    /// The same values as JSON-compatible dictionaries: name -> list of
    /// {"labels": {...}, "value": v} or {"labels", "count", "sum", "buckets": {"le": count}}.
    public func snapshot() -> [String: [[String: Any]]] {
        for collect in collectors.withLock({ $0 }) { collect() }
        return state.withLock { s in
            var out: [String: [[String: Any]]] = [:]
            for name in s.order {
                guard let f = s.families[name] else { continue }
                var series: [[String: Any]] = []
                for key in f.order {
                    let labels = Dictionary((f.labels[key] ?? []).map { ($0.0, $0.1) }, uniquingKeysWith: { _, b in b })
                    if f.kind == .histogram, let h = f.histograms[key] {
                        var cumulative: UInt64 = 0
                        var buckets: [String: UInt64] = [:]
                        for (i, bound) in f.bounds.enumerated() {
                            cumulative += h.buckets[i]
                            buckets[Self.number(bound)] = cumulative
                        }
                        series.append(["labels": labels, "count": h.count, "sum": h.sum, "buckets": buckets])
                    } else if let v = f.values[key] {
                        series.append(["labels": labels, "value": v])
                    }
                }
                out[name] = series
            }
            return out
        }
    }

    // MARK: - Formatting

    static func key(_ labels: Labels) -> SeriesKey { SeriesKey(labels: labels.map { "\($0.0)=\($0.1)" }) }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII,
              first.properties.isAlphabetic || first == "_" || first == ":" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ":") }
    }

    static func labelText(_ labels: Labels) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escapeLabel(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
