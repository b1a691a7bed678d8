// The small answers and requests as they are on the wire: the shapes Glance's clients and importctl read.
import Foundation
import GlanceModels
import Testing

@Suite("Glance JSON shapes: versions, import info, requests")
struct GlanceInfoTests {
    func wire(_ value: some Encodable) throws -> String {
        String(decoding: try GlanceCoding.encode(value), as: UTF8.self)
    }

    @Test("the version list and the import methods are Glance's documents, byte for byte")
    func discovery() throws {
        let versions = GlanceVersionList(versions: [.init(id: "v2.17", status: "CURRENT", selfLink: "http://h:9292/v2/")])
        #expect(try wire(versions) == #"{"versions":[{"id":"v2.17","links":[{"href":"http://h:9292/v2/","rel":"self"}],"status":"CURRENT"}]}"#)
        #expect(
            try wire(GlanceImportInfo(methods: ["glance-direct", "web-download"]))
                == #"{"import-methods":{"description":"Import methods available.","type":"array","value":["glance-direct","web-download"]}}"#)
        #expect(try GlanceCoding.decode(GlanceVersionList.self, from: GlanceCoding.encode(versions)) == versions)
    }

    @Test("an image creation is flat, sends only what was given, and each key once")
    func imageCreation() throws {
        #expect(try wire(GlanceImageCreation()) == "{}")
        let created = GlanceImageCreation(name: "n", diskFormat: "raw", isProtected: true, properties: ["hw_disk_bus": "scsi", "name": "from --property"])
        let object = try #require(try JSONSerialization.jsonObject(with: GlanceCoding.encode(created)) as? [String: Any])
        #expect(object.count == 4)
        #expect(object["name"] as? String == "from --property" && object["disk_format"] as? String == "raw")
        #expect(object["protected"] as? Bool == true && object["hw_disk_bus"] as? String == "scsi")
        #expect(try wire(created).components(separatedBy: "\"name\"").count == 2, "one name key")
    }

    @Test("an import request and a policy check read back as sent; a target of other than text is refused")
    func requests() throws {
        #expect(try wire(GlanceImportRequest(method: "glance-direct", uri: nil)) == #"{"method":{"name":"glance-direct"}}"#)
        #expect(
            try wire(GlanceImportRequest(method: "web-download", uri: "https://x/i.qcow2")) == #"{"method":{"name":"web-download","uri":"https://x/i.qcow2"}}"#)
        let check = PolicyCheckRequest(action: "upload_image", target: ["project_id": "p"], user: "alice")
        #expect(try wire(check) == #"{"action":"upload_image","as":"alice","target":{"project_id":"p"}}"#)
        #expect(try GlanceCoding.decode(PolicyCheckRequest.self, from: Data(#"{"action":"get_images"}"#.utf8)) == PolicyCheckRequest(action: "get_images"))
        #expect(throws: DecodingError.self) { try GlanceCoding.decode(PolicyCheckRequest.self, from: Data(#"{"action":"a","target":{"n":1}}"#.utf8)) }
        #expect(throws: DecodingError.self) { try GlanceCoding.decode(PolicyCheckRequest.self, from: Data(#"{"target":{}}"#.utf8)) }
    }
}
