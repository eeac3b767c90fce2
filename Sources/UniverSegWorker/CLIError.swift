/// A command-line failure with one message: ArgumentParser prints "Error: MESSAGE" and exits 1
/// (without the usage text a ValidationError adds).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
