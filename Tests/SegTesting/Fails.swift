/// The typed error `body` throws, or nil when it succeeds: for tests that check error kinds.
public func fails<T, E: Error>(_ body: () throws(E) -> T) -> E? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
