extension Duration {
    /// The duration in milliseconds, as a Double (for timings in benchmarks, logs and results).
    package var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) * 1e-15
    }
}
