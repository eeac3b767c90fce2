internal import CCrypto

/// SHA-256 (FIPS 180-4), used to identify weight files and support sets in results; computed by
/// OpenSSL's libcrypto, which uses the CPU's SHA extensions where present (a portable Swift
/// version ran at about 190 MB/s, a third of the time `segment` spent loading weights).
public enum SHA256 {
    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = message.withUnsafeBytes { bytes in
            out.withUnsafeMutableBufferPointer { EVP_Digest(bytes.baseAddress, bytes.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        // EVP_Digest with SHA-256 fails only when libcrypto cannot allocate a context.
        precondition(ok == 1 && length == 32, "libcrypto: SHA-256 failed")
        return Array(out.prefix(32))
    }

    public static func hex(_ message: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(digest(message).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] })
    }
}
