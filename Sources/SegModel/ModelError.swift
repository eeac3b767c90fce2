/// A failure of the model layer: invalid configuration, weights that do not fit the network,
/// or inputs of the wrong shape. `message` names the tensor or value at fault.
public struct ModelError: Error, Equatable, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        public static let missingTensor = Code(name: "missing_tensor")
        public static let unexpectedTensor = Code(name: "unexpected_tensor")
        public static let shapeMismatch = Code(name: "shape_mismatch")
        public static let invalidValue = Code(name: "invalid_value")
        public static let invalidInput = Code(name: "invalid_input")
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
