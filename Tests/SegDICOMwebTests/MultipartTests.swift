import SegDICOMweb
import Testing

@Suite struct MultipartTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func parses(_ body: String, _ contentType: String) throws -> [Multipart.Part] {
        try Multipart.parse(bytes(body), contentType: contentType)
    }

    private func rejects(_ body: [UInt8], _ contentType: String) -> DICOMwebError? {
        do {
            _ = try Multipart.parse(body, contentType: contentType)
            return nil
        } catch {
            return error
        }
    }

    @Test func quotedAndUnquotedBoundary() throws {
        let body = "--b0\r\nContent-Type: application/dicom\r\n\r\nDATA\r\n--b0--\r\n"
        for contentType in [
            #"multipart/related; type="application/dicom"; boundary=b0"#,
            #"multipart/related; type="application/dicom"; boundary="b0""#,
            #"Multipart/Related;Boundary=b0;type=application/dicom"#,
        ] {
            let parts = try parses(body, contentType)
            #expect(parts.count == 1, "\(contentType)")
            #expect(parts.first?.body == bytes("DATA"))
            #expect(parts.first?.headers["content-type"] == "application/dicom")
        }
    }

    @Test func orthancContentTypeWithTransferSyntaxInsideTheQuotedType() throws {
        // The form Orthanc's DICOMweb plugin answers frames with; the quoted type contains ";"
        // and "=", and a fake boundary inside quotes must not win.
        let contentType =
            #"multipart/related; type="application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"; boundary=33abb6d6-b635"#
        #expect(Multipart.boundary(ofContentType: contentType) == "33abb6d6-b635")
        #expect(Multipart.boundary(ofContentType: #"multipart/related; type="a; boundary=wrong"; boundary="right""#) == "right")
        let body = "--33abb6d6-b635\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n"
            + "Content-Location: /dicom-web/x\r\nMIME-Version: 1.0\r\n\r\nPIXELS\r\n--33abb6d6-b635--"
        let parts = try parses(body, contentType)
        #expect(parts.map(\.body) == [bytes("PIXELS")])
        #expect(parts.first?.headers["content-location"] == "/dicom-web/x")
    }

    @Test func preambleEpilogueAndSeveralParts() throws {
        let body = "This is a preamble.\r\n--B\r\nContent-Type: a\r\n\r\nONE\r\n--B\r\nContent-Type: b\r\n\r\nTWO\r\n--B--\r\nepilogue"
        let parts = try parses(body, "multipart/related; boundary=B")
        #expect(parts.map(\.body) == [bytes("ONE"), bytes("TWO")])
        #expect(parts.map { $0.headers["content-type"] } == ["a", "b"])
    }

    @Test func missingCloseDelimiterIsInvalid() {
        let truncated = bytes("--B\r\nContent-Type: a\r\n\r\nONE\r\n--B\r\nContent-Type: b\r\n\r\nTW")
        #expect(rejects(truncated, "multipart/related; boundary=B")?.kind == .invalidResponse)
        #expect(rejects(bytes("--B\r\n\r\nONE\r\n"), "multipart/related; boundary=B")?.kind == .invalidResponse)
        #expect(rejects(bytes("no delimiter at all"), "multipart/related; boundary=B")?.kind == .invalidResponse)
        #expect(rejects(bytes("--B\r\n\r\nONE\r\n--B--"), "multipart/related")?.kind == .invalidResponse)  // no boundary
        #expect(rejects(bytes("--B--\r\n"), "multipart/related; boundary=B")?.kind == .invalidResponse)  // no parts
    }

    @Test func crlfHandling() throws {
        // Content that ends in CRLF keeps it (only the CRLF before the delimiter belongs to it);
        // bare LF line ends are accepted; a line that merely starts with the delimiter is content.
        let body = "--B\r\nContent-Type: a\r\n\r\nline1\r\n\r\n--Bogus\r\n\r\n--B--"
        #expect(try parses(body, "multipart/related; boundary=B").first?.body == bytes("line1\r\n\r\n--Bogus\r\n"))
        let lf = "--B\nContent-Type: a\n\nLF body\n--B--\n"
        #expect(try parses(lf, "multipart/related; boundary=B").first?.body == bytes("LF body"))
        let padded = "--B  \r\nContent-Type: a\r\n\r\nX\r\n--B--"
        #expect(try parses(padded, "multipart/related; boundary=B").first?.body == bytes("X"))
        let noHeaders = "--B\r\n\r\nbare\r\n--B--"
        #expect(try parses(noHeaders, "multipart/related; boundary=B").first == Multipart.Part(headers: [:], body: bytes("bare")))
    }

    @Test func roundTripWithBuild() throws {
        var binary = (0...255).map(UInt8.init)
        binary += bytes("\r\n--almost\r\n")
        let parts: [[UInt8]] = [binary, [], bytes("\r\n"), bytes("tail\r\n")]
        let boundary = "SegDICOMweb-test-1"
        let contentType = #"multipart/related; type="application/dicom"; boundary=\#(boundary)"#
        let body = Multipart.build(parts: parts, contentType: "application/dicom", boundary: boundary)
        let parsed = try Multipart.parse(body, contentType: contentType)
        #expect(parsed.map(\.body) == parts)
        #expect(parsed.allSatisfy { $0.headers["content-type"] == "application/dicom" })
        #expect(body.starts(with: bytes("--\(boundary)\r\nContent-Type: application/dicom\r\n\r\n")))
        #expect(Array(body.suffix(boundary.utf8.count + 6)) == bytes("--\(boundary)--\r\n"))
    }
}

@Suite struct DICOMUIDTests {
    @Test func validUIDs() {
        for uid in ["0", "1.2", "1.2.840.10008.1.2.1", "2.25.329800735698586629295641978511506172918", "1.0.3",
                    String(repeating: "1", count: 64)] {
            #expect(DICOMUID.isValid(uid), "\(uid)")
        }
    }

    @Test func invalidUIDs() {
        for uid in ["", ".", "1.", ".1", "1..2", "1.02", "01.2", "1.2a", "1.2/3", "../1", "1.2?x=1", "1.2%2F3", " 1.2", "1.2 ",
                    "١.٢", String(repeating: "1", count: 65), "1.2.3/instances"] {
            #expect(!DICOMUID.isValid(uid), "\(uid)")
        }
    }
}
