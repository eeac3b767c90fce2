internal import Foundation
internal import SegHTTP

/// A standard DICOMweb client (PS3.18): QIDO-RS instance listing, WADO-RS instance retrieval,
/// STOW-RS store. Nothing server-specific. Synchronous: call it from executor threads.
///
/// - Every UID is checked with ``DICOMUID/isValid(_:)`` before a URL is built; an invalid one is
///   `.badRequest` and no request is sent.
/// - Transport failures (refused, reset, DNS, TLS, time-out, malformed HTTP) are `.unavailable`.
/// - Statuses: 404/410 `.notFound`; 401, 403, 408, 429 and 5xx `.unavailable`; 409 on STOW
///   `.rejected`; other 4xx `.badRequest`; anything else unexpected `.invalidResponse`.
/// - Messages name the server (``DICOMwebServer/name``), the operation and the status or
///   failure; never UIDs, patient data or response bodies.
public final class DICOMwebClient: Sendable {
    public let server: DICOMwebServer
    private let http: HTTPClient
    private let authorization: String?

    /// Bound on a QIDO-RS answer: this much plus `perInstanceQIDOBytes` per requested instance.
    static let baseQIDOBytes = 1 << 20
    static let perInstanceQIDOBytes = 16 << 10
    /// Room for multipart framing around a WADO-RS instance, above the caller's bound.
    static let multipartOverheadBytes = 64 << 10
    /// Bound on a STOW-RS answer (a dicom+json status document).
    static let storeResponseBytes = 4 << 20

    public init(server: DICOMwebServer) {
        self.server = server
        self.http = HTTPClient(options: .init(timeoutSeconds: server.timeoutSeconds, caFile: server.caFile))
        switch server.auth {
        case .none: authorization = nil
        case .bearer(let token): authorization = "Bearer \(token)"
        case .basic(let user, let password): authorization = "Basic \(Data("\(user):\(password)".utf8).base64EncodedString())"
        }
    }

    // MARK: QIDO-RS

    /// QIDO-RS `GET {base}/studies/{study}/series/{series}/instances?limit={limit+1}` (Accept:
    /// application/dicom+json): the SOPInstanceUIDs (0008,0018) in the server's order. No match
    /// (an empty list, 204 or 404) is `.notFound`; more than `limit` instances is `.tooLarge`.
    public func instanceUIDs(study: String, series: String, limit: Int) throws(DICOMwebError) -> [String] {
        let operation = "QIDO-RS instances of a series"
        try validate([study, series], operation)
        guard limit >= 1 else { throw fail(.badRequest, operation, "limit must be at least 1") }
        let url = try endpoint(["studies", study, "series", series, "instances"], query: "limit=\(limit + 1)", operation)
        let maxBytes = Self.baseQIDOBytes + min(limit, 1 << 20) * Self.perInstanceQIDOBytes
        let response = try exchange("GET", url, accept: "application/dicom+json", body: nil, contentType: nil, maxBytes: maxBytes, operation)
        if response.status == 204 { throw fail(.notFound, operation, "no matching instances (HTTP 204)") }
        guard response.status == 200 else { throw statusError(response.status, operation) }
        guard let items = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [Any] else {
            throw fail(.invalidResponse, operation, "the answer is not a DICOM JSON array")
        }
        var uids: [String] = []
        uids.reserveCapacity(items.count)
        for item in items {
            guard let object = item as? [String: Any], let uid = Self.firstString(object["00080018"]), DICOMUID.isValid(uid) else {
                throw fail(.invalidResponse, operation, "a result lacks a valid SOPInstanceUID (00080018)")
            }
            uids.append(uid)
        }
        if uids.isEmpty { throw fail(.notFound, operation, "no matching instances") }
        if uids.count > limit { throw fail(.tooLarge, operation, "more than \(limit) instances") }
        return uids
    }

    // MARK: WADO-RS

    /// WADO-RS `GET {base}/studies/{s}/series/{se}/instances/{i}` with `Accept: multipart/related;
    /// type="application/dicom"; transfer-syntax=*` (the stored transfer syntax): the Part-10 bytes
    /// of the single part. More than `maxBytes` bytes of instance is `.tooLarge` (the transfer is
    /// cut off while it is read once it exceeds `maxBytes` plus 64 KiB of framing).
    public func retrieveInstance(study: String, series: String, instance: String, maxBytes: Int) throws(DICOMwebError) -> [UInt8] {
        let operation = "WADO-RS instance"
        try validate([study, series, instance], operation)
        let url = try endpoint(["studies", study, "series", series, "instances", instance], query: nil, operation)
        let response = try exchange(
            "GET", url, accept: #"multipart/related; type="application/dicom"; transfer-syntax=*"#, body: nil, contentType: nil,
            maxBytes: maxBytes + Self.multipartOverheadBytes, operation)
        guard response.status == 200 else { throw statusError(response.status, operation) }
        guard let contentType = response.headers["content-type"], contentType.lowercased().hasPrefix("multipart/related") else {
            throw fail(.invalidResponse, operation, "the answer is not multipart/related")
        }
        let parts: [Multipart.Part]
        do {
            parts = try Multipart.parse(response.body, contentType: contentType)
        } catch {
            throw fail(.invalidResponse, operation, error.message)
        }
        guard parts.count == 1, let part = parts.first else {
            throw fail(.invalidResponse, operation, "expected one part, got \(parts.count)")
        }
        if let type = part.headers["content-type"], !type.lowercased().hasPrefix("application/dicom") {
            throw fail(.invalidResponse, operation, "the part is not application/dicom")
        }
        guard part.body.count <= maxBytes else {
            throw fail(.tooLarge, operation, "the instance (\(part.body.count) bytes) exceeds the limit of \(maxBytes) bytes")
        }
        guard part.body.count >= 132, part.body[128..<132].elementsEqual("DICM".utf8) else {
            throw fail(.invalidResponse, operation, "the part is not a DICOM Part-10 file (no DICM prefix)")
        }
        return part.body
    }

    // MARK: STOW-RS

    /// STOW-RS `POST {base}/studies/{study}` of one Part-10 instance (`multipart/related;
    /// type="application/dicom"`), parsing the dicom+json answer: FailedSOPSequence (0008,1198)
    /// items make it `.rejected` with their FailureReason (0008,1197) codes; otherwise the
    /// ReferencedSOPSequence (0008,1199) item gives the receipt.
    public func store(study: String, instance bytes: [UInt8]) throws(DICOMwebError) -> StoreReceipt {
        let operation = "STOW-RS store"
        try validate([study], operation)
        let url = try endpoint(["studies", study], query: nil, operation)
        var boundary = "SegDICOMweb-\(UUID().uuidString)"
        while Multipart.find(Array(boundary.utf8), in: bytes, from: 0) != nil { boundary = "SegDICOMweb-\(UUID().uuidString)" }
        let body = Multipart.build(parts: [bytes], contentType: "application/dicom", boundary: boundary)
        let response = try exchange(
            "POST", url, accept: "application/dicom+json", body: body,
            contentType: #"multipart/related; type="application/dicom"; boundary=\#(boundary)"#,
            maxBytes: Self.storeResponseBytes, operation)
        // Servers send the status document with 4xx too, sometimes without a Content-Type.
        let document = response.body.isEmpty ? nil : (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        if let document {
            let failed = Self.items(document["00081198"])
            // FailureReason 0x0111 (Duplicate SOP Instance) for every item: the server already
            // holds this instance. The worker derives the SEG's UIDs from the request, so this is a
            // redelivered request storing the same SEG again: already done, not a rejection.
            if !failed.isEmpty, failed.allSatisfy({ Self.firstInt($0["00081197"]) == 0x0111 }) {
                return StoreReceipt(sopInstanceUID: Self.firstString(failed[0]["00081155"]),
                                    retrieveURL: Self.firstString(document["00081190"]))
            }
            if !failed.isEmpty {
                let codes = failed.compactMap { Self.firstInt($0["00081197"]) }
                let described = codes.map { "\($0) (0x\(String($0, radix: 16, uppercase: true)))" }.joined(separator: ", ")
                throw fail(.rejected, operation, "HTTP \(response.status), FailedSOPSequence, FailureReason \(described.isEmpty ? "absent" : described)")
            }
        }
        if response.status == 409 { throw fail(.rejected, operation, "HTTP 409") }
        guard (200...299).contains(response.status) else { throw statusError(response.status, operation) }
        guard let document else { throw fail(.invalidResponse, operation, "the answer is not a DICOM JSON object") }
        guard let item = Self.items(document["00081199"]).first else {
            throw fail(.invalidResponse, operation, "HTTP \(response.status) without ReferencedSOPSequence or FailedSOPSequence items")
        }
        return StoreReceipt(
            sopInstanceUID: Self.firstString(item["00081155"]),
            retrieveURL: Self.firstString(item["00081190"]) ?? Self.firstString(document["00081190"]))
    }

    // MARK: Plumbing

    private func validate(_ uids: [String], _ operation: String) throws(DICOMwebError) {
        for uid in uids where !DICOMUID.isValid(uid) {
            throw fail(.badRequest, operation, "an invalid UID was refused before any request")
        }
    }

    /// `{base}/{segments joined by "/"}?{query}`; segments are validated UIDs or fixed words.
    private func endpoint(_ segments: [String], query: String?, _ operation: String) throws(DICOMwebError) -> URL {
        var base = server.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var text = base + "/" + segments.joined(separator: "/")
        if let query { text += "?" + query }
        guard let url = URL(string: text) else { throw fail(.badRequest, operation, "the base URL cannot be extended") }
        return url
    }

    private func exchange(
        _ method: String, _ url: URL, accept: String, body: [UInt8]?, contentType: String?, maxBytes: Int, _ operation: String
    ) throws(DICOMwebError) -> HTTPResponse {
        var headers = ["Accept": accept]
        if let contentType { headers["Content-Type"] = contentType }
        if let authorization { headers["Authorization"] = authorization }
        do {
            return try http.send(method: method, url: url, headers: headers, body: body, maxBytes: maxBytes)
        } catch {
            switch error.kind {
            case .tooLarge(let limit): throw fail(.tooLarge, operation, "the answer exceeds \(limit) bytes")
            case .status(let status): throw statusError(status, operation)
            case .unreachable, .timeout, .invalidResponse: throw fail(.unavailable, operation, error.message)
            }
        }
    }

    private func statusError(_ status: Int, _ operation: String) -> DICOMwebError {
        let kind: DICOMwebError.Kind
        switch status {
        case 404, 410: kind = .notFound
        case 401, 403, 408, 429, 500...599: kind = .unavailable
        case 400...499: kind = .badRequest
        default: kind = .invalidResponse
        }
        return fail(kind, operation, "HTTP \(status)")
    }

    private func fail(_ kind: DICOMwebError.Kind, _ operation: String, _ what: String) -> DICOMwebError {
        DICOMwebError(kind: kind, message: "\(server.name): \(operation): \(what)")
    }

    /// The first element of a DICOM JSON attribute's Value, as a string.
    static func firstString(_ attribute: Any?) -> String? {
        ((attribute as? [String: Any])?["Value"] as? [Any])?.first as? String
    }

    /// The first element of a DICOM JSON attribute's Value, as an integer (number or numeric string).
    static func firstInt(_ attribute: Any?) -> Int? {
        guard let value = ((attribute as? [String: Any])?["Value"] as? [Any])?.first else { return nil }
        if let number = value as? NSNumber { return number.intValue }
        if let text = value as? String { return Int(text) }
        return nil
    }

    /// The items of a DICOM JSON sequence attribute (empty when absent or empty).
    static func items(_ attribute: Any?) -> [[String: Any]] {
        ((attribute as? [String: Any])?["Value"] as? [Any])?.compactMap { $0 as? [String: Any] } ?? []
    }
}
