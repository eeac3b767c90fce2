import Foundation
import SegService
import Testing

@Suite struct RequestParsingTests {
    let png = Data([0x89, 0x50, 0x4E, 0x47]).base64EncodedString()

    func parse(_ json: String) throws -> SegmentationRequest { try SegmentationRequest.parse(Array(json.utf8)) }

    @Test func fullRequestParsesWithDefaults() throws {
        let r = try parse(#"{"request_id":"a-1:x.y","support_set":{"id":"wbc","version":"3"},"image":{"png_base64":"\#(png)"}}"#)
        #expect(r.requestID == "a-1:x.y" && r.supportSetID == "wbc" && r.supportSetVersion == "3")
        #expect(r.image == .png([0x89, 0x50, 0x4E, 0x47]))
        #expect(r.options == .default)
        let o = try parse(#"{"request_id":"b","support_set":{"id":"s"},"image":{"store_path":"q/1.png"},"options":{"support_size":8,"ensemble":4,"seed":9,"threshold":0.25}}"#)
        #expect(o.supportSetVersion == nil)
        #expect(o.image == .storePath("q/1.png"))
        #expect(o.options == .init(supportSize: 8, ensemble: 4, seed: 9, threshold: 0.25))
    }

    @Test(arguments: [
        ("", "invalid_json"), ("{", "invalid_json"), ("[1]", "invalid_json"), ("null", "invalid_json"),
        (#"{"support_set":{"id":"s"},"image":{"store_path":"a"}}"#, "invalid_request"),
        (#"{"request_id":"bad id!","support_set":{"id":"s"},"image":{"store_path":"a"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"../etc"},"image":{"store_path":"a"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s","version":".."},"image":{"store_path":"a"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"extra":1}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"png_base64":"%%%"}}"#, "image_decode"),
        (#"{"request_id":7,"support_set":{"id":"s"},"image":{"store_path":"a"}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"options":{"ensemble":0}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"options":{"ensemble":true}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"options":{"support_size":1.5}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"options":{"threshold":1}}"#, "invalid_request"),
        (#"{"request_id":"r","support_set":{"id":"s"},"image":{"store_path":"a"},"options":{"seed":-1}}"#, "invalid_request"),
    ])
    func invalidRequestsGiveTheirCode(json: String, code: String) {
        let error = #expect(throws: ServiceError.self) { try parse(json) }
        #expect(error?.code.rawValue == code, "\(json): \(error?.reason ?? "")")
    }

    @Test func tombstoneAndOversizedIDs() {
        #expect((#expect(throws: ServiceError.self) { try SegmentationRequest.parse(nil) })?.code == .invalidJSON)
        let long = String(repeating: "a", count: 129)
        #expect(!SegmentationRequest.isValidRequestID(long))
        #expect(SegmentationRequest.isValidRequestID(String(repeating: "a", count: 128)))
        #expect(SegmentationRequest.salvageRequestID(Array(#"{"request_id":"ok-1","image":3}"#.utf8)) == "ok-1")
        #expect(SegmentationRequest.salvageRequestID(Array(#"{"request_id":"no way"}"#.utf8)) == nil)
    }
}
