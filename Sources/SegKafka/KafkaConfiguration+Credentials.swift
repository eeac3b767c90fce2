internal import Foundation

extension KafkaConfiguration {
    /// Sets property `key` to the contents of the file at `path`, without one trailing newline
    /// (`\n` or `\r\n`), so that secrets (e.g. `sasl.password`, `ssl.key.password`) need not be
    /// written into configuration files or the environment.
    ///
    /// - Throws: ``KafkaError`` with code `_NOENT` when the file cannot be read, or
    ///   `_INVALID_ARG` when it is not UTF-8 or larger than 1 MiB. The message names `key` and
    ///   `path`, never the contents.
    public mutating func setFromFile(_ key: String, path: String) throws {
        properties[key] = try Self.readPropertyFile(path, key: key)
    }

    /// Sets property `key` from a systemd credential: the file `$CREDENTIALS_DIRECTORY/<name>`
    /// (`LoadCredential=<name>:<source>` in the unit).
    ///
    /// - Parameter environment: where to look up `CREDENTIALS_DIRECTORY`; nil (the default) means
    ///   the process environment.
    /// - Throws: ``KafkaError`` (`_INVALID_ARG`) when `CREDENTIALS_DIRECTORY` is unset or `name`
    ///   is not a plain file name, and the errors of ``setFromFile(_:path:)``.
    public mutating func setFromCredential(
        _ key: String, name: String, environment: [String: String]? = nil
    ) throws {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
            throw KafkaError(
                .invalidArgument, "credential \"\(name)\" for \(key): CREDENTIALS_DIRECTORY is not set", key: key)
        }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw KafkaError(.invalidArgument, "credential name \"\(name)\" for \(key) is not a file name", key: key)
        }
        try setFromFile(key, path: directory + "/" + name)
    }

    static func readPropertyFile(_ path: String, key: String) throws -> String {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            guard size <= 1 << 20 else {
                throw KafkaError(.invalidArgument, "value file for \(key) is larger than 1 MiB: \(path)", key: key)
            }
            data = try Data(contentsOf: url)
        } catch let error as KafkaError {
            throw error
        } catch {
            throw KafkaError(.noEntry, "cannot read value file for \(key): \(path)", key: key)
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw KafkaError(.invalidArgument, "value file for \(key) is not UTF-8: \(path)", key: key)
        }
        // "\r\n" is a single Character in Swift, so one removeLast() drops either ending.
        if text.last == "\n" || text.last == "\r\n" { text.removeLast() }
        return text
    }
}
