/// A failure reading or validating data from outside the process (files, PNG bytes, weight
/// files, support sets). `code` is stable and machine-readable; `message` names the file,
/// entry or tensor at fault and never contains pixel data.
public struct IOError: Error, Equatable, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let fileNotFound = Code(name: "file_not_found")
        /// The path exists but is not a regular file (a directory, FIFO, socket or device).
        public static let notARegularFile = Code(name: "not_a_regular_file")
        public static let fileTooLarge = Code(name: "file_too_large")
        public static let readFailed = Code(name: "read_failed")
        public static let writeFailed = Code(name: "write_failed")
        public static let imageDecode = Code(name: "image_decode")
        public static let imageTooLarge = Code(name: "image_too_large")
        public static let imageEncode = Code(name: "image_encode")
        public static let invalidWeights = Code(name: "invalid_weights")
        public static let invalidSupportSet = Code(name: "support_set_invalid")
        /// An evaluation suite file or task argument (`eval --suite`, `--task`).
        public static let invalidSuite = Code(name: "suite_invalid")
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
