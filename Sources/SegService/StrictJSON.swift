/// A strict RFC 8259 syntax check of a record value, run before Foundation's parser builds the
/// objects. Foundation is lenient where a request must not be: it accepts trailing commas, UTF-16
/// and UTF-32 text, and silently keeps the last of duplicate keys (so two readers of one request
/// could disagree on its request_id). The scan is iterative (no recursion, nesting bounded by
/// `maxDepth`) and linear in the input.
///
/// What it checks: the text is UTF-8 (an optional UTF-8 byte order mark is skipped; a NUL byte or
/// any other control character outside the JSON whitespace fails), the top-level value is an
/// object, the grammar is exactly RFC 8259's (no trailing commas, comments, NaN, single quotes,
/// leading zeros), nesting is at most `maxDepth` levels, and no object has two equal keys (keys
/// compared after unescaping, as Swift strings, like the dictionaries Foundation builds).
/// Invalid UTF-8 sequences inside strings are left to Foundation, which rejects them.
enum StrictJSON {
    enum Failure: Error, Equatable {
        case notAnObject
        case syntax
        case tooDeep
    }

    struct Report: Equatable {
        /// The path of the first duplicate key (object keys from the root; arrays as "[]").
        var firstDuplicate: [String]?
        /// Top-level keys that occur more than once.
        var duplicateTopLevelKeys: Set<String> = []
    }

    static let maxDepth = 512

    static func check(_ bytes: [UInt8], maxDepth: Int = maxDepth) -> Result<Report, Failure> {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer, maxDepth: maxDepth)
            return scanner.run()
        }
    }

    private struct Frame {
        let isObject: Bool
        var keys: Set<String> = []
        var key = ""
    }

    private struct Scanner {
        let b: UnsafeBufferPointer<UInt8>
        let maxDepth: Int
        var i = 0
        var stack: [Frame] = []
        var report = Report()

        init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
            self.b = bytes
            self.maxDepth = maxDepth
        }

        enum State { case value, key, afterValue }

        mutating func run() -> Result<Report, Failure> {
            if b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { i = 3 }
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: "{") else { return .failure(.notAnObject) }
            var state = State.value
            do {
                while true {
                    skipWhitespace()
                    switch state {
                    case .value:
                        guard i < b.count else { throw Failure.syntax }
                        switch b[i] {
                        case UInt8(ascii: "{"), UInt8(ascii: "["):
                            let isObject = b[i] == UInt8(ascii: "{")
                            guard stack.count < maxDepth else { throw Failure.tooDeep }
                            stack.append(Frame(isObject: isObject))
                            i += 1
                            skipWhitespace()
                            if i < b.count && b[i] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                                i += 1
                                stack.removeLast()
                                state = .afterValue
                            } else {
                                state = isObject ? .key : .value
                            }
                        case UInt8(ascii: "\""):
                            _ = try string()
                            state = .afterValue
                        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                            try number()
                            state = .afterValue
                        case UInt8(ascii: "t"): try literal("true"); state = .afterValue
                        case UInt8(ascii: "f"): try literal("false"); state = .afterValue
                        case UInt8(ascii: "n"): try literal("null"); state = .afterValue
                        default: throw Failure.syntax
                        }
                    case .key:
                        guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw Failure.syntax }
                        let (start, end, escaped) = try string()
                        let key: String
                        if escaped {
                            guard let decoded = Self.unescape(b[start..<end]) else { throw Failure.syntax }
                            key = decoded
                        } else {
                            key = String(decoding: b[start..<end], as: UTF8.self)
                        }
                        skipWhitespace()
                        guard i < b.count, b[i] == UInt8(ascii: ":") else { throw Failure.syntax }
                        i += 1
                        let top = stack.count - 1
                        if !stack[top].keys.insert(key).inserted {
                            if report.firstDuplicate == nil {
                                report.firstDuplicate = stack[..<top].map { $0.isObject ? $0.key : "[]" } + [key]
                            }
                            if top == 0 { report.duplicateTopLevelKeys.insert(key) }
                        }
                        stack[top].key = key
                        state = .value
                    case .afterValue:
                        guard let top = stack.last else {
                            guard i == b.count else { throw Failure.syntax }  // trailing data
                            return .success(report)
                        }
                        guard i < b.count else { throw Failure.syntax }
                        switch b[i] {
                        case UInt8(ascii: ","):
                            i += 1
                            state = top.isObject ? .key : .value  // so "[1,]" and "{...,}" fail
                        case UInt8(ascii: "}") where top.isObject, UInt8(ascii: "]") where !top.isObject:
                            i += 1
                            stack.removeLast()
                        default:
                            throw Failure.syntax
                        }
                    }
                }
            } catch let failure as Failure {
                return .failure(failure)
            } catch {
                return .failure(.syntax)
            }
        }

        mutating func skipWhitespace() {
            while i < b.count {
                switch b[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        /// Scans a string starting at its opening quote; returns the range of its contents.
        mutating func string() throws -> (Int, Int, Bool) {
            i += 1
            let start = i
            var escaped = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return (start, i - 1, escaped)
                } else if c == UInt8(ascii: "\\") {
                    escaped = true
                    guard i + 1 < b.count else { throw Failure.syntax }
                    switch b[i + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 2
                    case UInt8(ascii: "u"):
                        guard i + 5 < b.count, (2...5).allSatisfy({ Self.isHex(b[i + $0]) }) else { throw Failure.syntax }
                        i += 6
                    default:
                        throw Failure.syntax
                    }
                } else if c < 0x20 {
                    throw Failure.syntax
                } else {
                    i += 1
                }
            }
            throw Failure.syntax
        }

        mutating func number() throws {
            if b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, Self.isDigit(b[i]) else { throw Failure.syntax }
            if b[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while i < b.count && Self.isDigit(b[i]) { i += 1 }
            }
            if i < b.count && b[i] == UInt8(ascii: ".") {
                i += 1
                guard i < b.count, Self.isDigit(b[i]) else { throw Failure.syntax }
                while i < b.count && Self.isDigit(b[i]) { i += 1 }
            }
            if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
                i += 1
                if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < b.count, Self.isDigit(b[i]) else { throw Failure.syntax }
                while i < b.count && Self.isDigit(b[i]) { i += 1 }
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw Failure.syntax }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { throw Failure.syntax }
            i += n
        }

        static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

        static func isHex(_ c: UInt8) -> Bool {
            isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
        }

        static func hexValue(_ c: UInt8) -> UInt32 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(c - UInt8(ascii: "a") + 10)
            default: UInt32(c - UInt8(ascii: "A") + 10)
            }
        }

        /// The contents of a string with escapes (already checked by `string()`); nil for a lone
        /// surrogate, which Foundation rejects too.
        static func unescape(_ s: Slice<UnsafeBufferPointer<UInt8>>) -> String? {
            var out: [UInt8] = []
            out.reserveCapacity(s.count)
            var k = s.startIndex
            func hex4(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 4 | hexValue(s[at + $1]) } }
            while k < s.endIndex {
                let c = s[k]
                guard c == UInt8(ascii: "\\") else {
                    out.append(c)
                    k += 1
                    continue
                }
                let e = s[k + 1]
                switch e {
                case UInt8(ascii: "b"): out.append(0x08); k += 2
                case UInt8(ascii: "f"): out.append(0x0C); k += 2
                case UInt8(ascii: "n"): out.append(0x0A); k += 2
                case UInt8(ascii: "r"): out.append(0x0D); k += 2
                case UInt8(ascii: "t"): out.append(0x09); k += 2
                case UInt8(ascii: "u"):
                    var scalar = hex4(k + 2)
                    k += 6
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard k + 5 < s.endIndex, s[k] == UInt8(ascii: "\\"), s[k + 1] == UInt8(ascii: "u") else { return nil }
                        let low = hex4(k + 2)
                        guard (0xDC00...0xDFFF).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        k += 6
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        return nil
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: out.append(e); k += 2  // \" \\ \/
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
