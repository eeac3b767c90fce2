/// multipart/related bodies as DICOMweb uses them (RFC 2046 framing, RFC 2387 type).
public enum Multipart {
    public struct Part: Sendable, Equatable {
        /// Part header names lower-cased.
        public var headers: [String: String]
        public var body: [UInt8]

        public init(headers: [String: String], body: [UInt8]) {
            self.headers = headers
            self.body = body
        }
    }

    /// The `boundary` parameter of a Content-Type, quoted or not. Quoted parameter values may
    /// contain `;` and `=` (servers put `transfer-syntax=...` inside the quoted `type`), so the
    /// header is scanned parameter by parameter, honouring quotes and backslash escapes.
    public static func boundary(ofContentType contentType: String) -> String? {
        parameters(of: contentType)["boundary"]
    }

    /// The media type (lower-cased, without parameters) and the parameters (names lower-cased).
    static func parameters(of contentType: String) -> [String: String] {
        var result: [String: String] = [:]
        let scalars = Array(contentType.unicodeScalars)
        var index = 0
        // Skip the media type itself.
        while index < scalars.count && scalars[index] != ";" { index += 1 }
        while index < scalars.count {
            index += 1  // past ";"
            while index < scalars.count && (scalars[index] == " " || scalars[index] == "\t") { index += 1 }
            var name = ""
            while index < scalars.count && scalars[index] != "=" && scalars[index] != ";" {
                name.unicodeScalars.append(scalars[index])
                index += 1
            }
            var value = ""
            if index < scalars.count && scalars[index] == "=" {
                index += 1
                if index < scalars.count && scalars[index] == "\"" {
                    index += 1
                    while index < scalars.count && scalars[index] != "\"" {
                        if scalars[index] == "\\" && index + 1 < scalars.count { index += 1 }
                        value.unicodeScalars.append(scalars[index])
                        index += 1
                    }
                    index += 1  // past the closing quote
                    while index < scalars.count && scalars[index] != ";" { index += 1 }
                } else {
                    while index < scalars.count && scalars[index] != ";" {
                        value.unicodeScalars.append(scalars[index])
                        index += 1
                    }
                    value = value.trimmingSpaces()
                }
            }
            let key = name.trimmingSpaces().lowercased()
            if !key.isEmpty && result[key] == nil { result[key] = value }
        }
        return result
    }

    /// Splits a multipart body into its parts. Lenient where servers differ: the boundary may be
    /// quoted or not, a preamble before the first delimiter and an epilogue after the close
    /// delimiter are ignored, bare LF line ends are accepted in part headers and around
    /// delimiters, and transport padding (spaces, tabs) after a delimiter is skipped. Strict
    /// where truncation would otherwise pass: the close delimiter (`--boundary--`) must be
    /// present, and there must be at least one part.
    public static func parse(_ body: [UInt8], contentType: String) throws(DICOMwebError) -> [Part] {
        guard let boundary = boundary(ofContentType: contentType), !boundary.isEmpty, boundary.utf8.count <= 200 else {
            throw DICOMwebError(kind: .invalidResponse, message: "multipart: no boundary in the Content-Type")
        }
        let delimiter = Array("--\(boundary)".utf8)
        // Delimiter lines: "--boundary" at the start of the body or of a line, followed by "--"
        // (the close delimiter) or by optional padding and a line end. Anything else that merely
        // starts with "--boundary" is content.
        var delimiters: [(at: Int, content: Int?)] = []  // content: where the next part starts; nil for close
        var search = 0
        while let found = find(delimiter, in: body, from: search) {
            search = found + delimiter.count
            guard found == 0 || body[found - 1] == 0x0A else { continue }
            var cursor = found + delimiter.count
            if cursor + 1 < body.count && body[cursor] == 0x2D && body[cursor + 1] == 0x2D {
                delimiters.append((found, nil))
                break
            }
            while cursor < body.count && (body[cursor] == 0x20 || body[cursor] == 0x09) { cursor += 1 }
            if cursor < body.count && body[cursor] == 0x0D { cursor += 1 }
            guard cursor < body.count && body[cursor] == 0x0A else { continue }
            delimiters.append((found, cursor + 1))
        }
        guard !delimiters.isEmpty else {
            throw DICOMwebError(kind: .invalidResponse, message: "multipart: no delimiter line")
        }
        guard delimiters.last?.content == nil else {
            throw DICOMwebError(kind: .invalidResponse, message: "multipart: no close delimiter (truncated body)")
        }
        var parts: [Part] = []
        for (current, next) in zip(delimiters, delimiters.dropFirst()) {
            guard let contentStart = current.content else { break }
            // The part ends before the line end that precedes the next delimiter.
            var end = next.at - 1  // the LF
            if end > contentStart && body[end - 1] == 0x0D { end -= 1 }
            guard end >= contentStart else {
                throw DICOMwebError(kind: .invalidResponse, message: "multipart: empty part")
            }
            parts.append(try part(Array(body[contentStart..<end])))
        }
        guard !parts.isEmpty else {
            throw DICOMwebError(kind: .invalidResponse, message: "multipart: no parts")
        }
        return parts
    }

    /// One part: headers up to the first empty line (CRLF or LF), then the body.
    private static func part(_ bytes: [UInt8]) throws(DICOMwebError) -> Part {
        var headers: [String: String] = [:]
        var lineStart = 0
        var index = 0
        while true {
            guard let newline = bytes[index...].firstIndex(of: 0x0A) else {
                throw DICOMwebError(kind: .invalidResponse, message: "multipart: part headers do not end")
            }
            var lineEnd = newline
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == lineStart {
                return Part(headers: headers, body: Array(bytes[(newline + 1)...]))
            }
            let line = String(decoding: bytes[lineStart..<lineEnd], as: UTF8.self)
            guard let colon = line.firstIndex(of: ":") else {
                throw DICOMwebError(kind: .invalidResponse, message: "multipart: malformed part header line")
            }
            headers[line[..<colon].trimmingSpaces().lowercased()] = line[line.index(after: colon)...].trimmingSpaces()
            index = newline + 1
            lineStart = index
        }
    }

    /// A multipart/related body: each part gets `Content-Type: contentType`. The boundary must
    /// not occur in any part (``DICOMwebClient`` picks a random one and checks).
    public static func build(parts: [[UInt8]], contentType: String, boundary: String) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(parts.reduce(0) { $0 + $1.count } + parts.count * (boundary.utf8.count + contentType.utf8.count + 32) + 8)
        for part in parts {
            body += Array("--\(boundary)\r\nContent-Type: \(contentType)\r\n\r\n".utf8)
            body += part
            body += Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        return body
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - from >= needle.count else { return nil }
        let first = needle[0]
        var index = from
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first {
                var match = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    match = false
                    break
                }
                if match { return index }
            }
            index += 1
        }
        return nil
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars = scalars.dropFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars = scalars.dropLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
