public import Foundation

/// DICOM unique identifiers (PS3.5 section 9.1).
public enum DICOMUID {
    /// 1-64 characters of digits and dots, no empty components, no leading zero in a component
    /// except "0" itself. Every UID goes through this before it is put into a URL, so a request
    /// cannot carry path segments, queries or escapes that came from a message.
    public static func isValid(_ uid: String) -> Bool {
        let bytes = Array(uid.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        var componentStart = 0
        for index in 0...bytes.count {
            if index == bytes.count || bytes[index] == UInt8(ascii: ".") {
                let length = index - componentStart
                if length == 0 { return false }
                if length > 1 && bytes[componentStart] == UInt8(ascii: "0") { return false }
                componentStart = index + 1
            } else if !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                return false
            }
        }
        return true
    }
}

/// Where a DICOMweb service is and how to authenticate to it.
public struct DICOMwebServer: Sendable, Equatable {
    public enum Auth: Sendable, Equatable {
        case none
        case bearer(String)
        case basic(user: String, password: String)
    }

    /// A short name for messages and logs (e.g. "pacs-main"); never a URL with credentials.
    public var name: String
    /// The DICOMweb root, e.g. `http://127.0.0.1:8042/dicom-web` (a trailing slash is allowed).
    public var baseURL: URL
    public var auth: Auth
    /// A PEM file of extra CA certificates for HTTPS, trusted beside the system store.
    public var caFile: String?
    /// The limit for each whole HTTP exchange.
    public var timeoutSeconds: Double

    public init(name: String, baseURL: URL, auth: Auth = .none, caFile: String? = nil, timeoutSeconds: Double = 30) {
        self.name = name
        self.baseURL = baseURL
        self.auth = auth
        self.caFile = caFile
        self.timeoutSeconds = timeoutSeconds
    }
}

/// A failed DICOMweb operation.
public struct DICOMwebError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Down, timed out, 5xx, 429, 408, 401/403: wait and retry.
        case unavailable
        /// 404, or a query that matched nothing.
        case notFound
        /// More data than the caller's bound (bytes or instances).
        case tooLarge
        /// The server answered something that is not valid DICOMweb.
        case invalidResponse
        /// STOW-RS: the server refused the instance (FailedSOPSequence, or 409).
        case rejected
        /// Any other 4xx, or a request refused before sending (invalid UID).
        case badRequest
    }

    public let kind: Kind
    /// The server name and what failed; never patient data.
    public let message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var isTransient: Bool { kind == .unavailable }

    public var description: String { message }
}

/// What a STOW-RS store reported for the one instance sent.
public struct StoreReceipt: Sendable, Equatable {
    /// ReferencedSOPInstanceUID (0008,1155) of the ReferencedSOPSequence item.
    public var sopInstanceUID: String?
    /// RetrieveURL (0008,1190) of that item, else the response's top-level one.
    public var retrieveURL: String?

    public init(sopInstanceUID: String?, retrieveURL: String?) {
        self.sopInstanceUID = sopInstanceUID
        self.retrieveURL = retrieveURL
    }
}
