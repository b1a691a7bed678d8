// The Glance shapes the API writes and importctl reads: what is on the wire, and that it reads back the same.
import Foundation
import GlanceModels
import Testing

@Suite("Glance JSON shapes")
struct GlanceModelsTests {
    let image = GlanceImage(
        id: "8ad2a6b6-1f0e-4e6f-9f63-3d7d1c1c8a11", name: nil, status: "queued", diskFormat: "raw", containerFormat: "bare",
        size: nil, virtualSize: nil, checksum: nil, osHashAlgo: nil, osHashValue: nil, owner: "project-a",
        visibility: "shared", isProtected: false, createdAt: "2026-12-03T11:00:00Z", updatedAt: "2026-12-03T11:00:01Z",
        importTask: nil, properties: ["hw_disk_bus": "scsi", "status": "must not replace the field"])

    @Test("an image is Glance's object: absent values are null, links are there, extra properties sit at the top level")
    func imageOnTheWire() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: GlanceCoding.encode(image)) as? [String: Any])
        #expect(object["name"] is NSNull && object["size"] is NSNull && object["checksum"] is NSNull)
        #expect(object["status"] as? String == "queued", "a property never overrides a field")
        #expect(object["hw_disk_bus"] as? String == "scsi")
        #expect(object["self"] as? String == "/v2/images/\(image.id)" && object["file"] as? String == "/v2/images/\(image.id)/file")
        #expect(object["tags"] as? [String] == [] && object["min_disk"] as? Int == 0)
        #expect(object["os_glance_import_task"] == nil, "no lock, no key")
    }

    @Test("what the API writes, importctl reads back unchanged")
    func roundTrip() throws {
        var locked = image
        locked.importTask = "t-1"
        locked.size = 1 << 40
        locked.properties = ["hw_disk_bus": "scsi"]
        #expect(try GlanceCoding.decode(GlanceImage.self, from: GlanceCoding.encode(locked)) == locked)
        let task = GlanceTask(
            id: "t-1", type: "api_image_import", status: "processing", input: GlanceTaskInput(imageID: image.id, method: "web-download", uri: "http://x/y"),
            result: nil,
            owner: "project-a", message: "", imageID: image.id, userID: nil, requestID: "req-1", expiresAt: nil,
            createdAt: "2026-12-03T11:00:00Z", updatedAt: "2026-12-03T11:00:02Z",
            progress: GlanceTask.Progress(bytesDone: 5, bytesTotal: 10))
        let list = try GlanceCoding.decode(GlanceTaskList.self, from: GlanceCoding.encode(GlanceTaskList(tasks: [task])))
        #expect(list.tasks == [task])
        let object = try #require(try JSONSerialization.jsonObject(with: GlanceCoding.encode(task)) as? [String: Any])
        #expect(object["result"] is NSNull && object["self"] as? String == "/v2/tasks/t-1")
        #expect((object["stagingfs_progress"] as? [String: Any])?["bytes_total"] as? Int == 10)
        // Glance's input: the import request as an object, and the stores as "backend".
        let input = try #require(object["input"] as? [String: Any])
        #expect(((input["import_req"] as? [String: Any])?["method"] as? [String: Any])?["uri"] as? String == "http://x/y", "\(input)")
        #expect((input["backend"] as? [Any])?.first is NSNull && input["image_id"] as? String == image.id)
    }

    @Test("an error body is webob's: code, title, message")
    func errorBody() throws {
        let object = try #require(
            try JSONSerialization.jsonObject(with: GlanceCoding.encode(GlanceError(status: 409, title: "Conflict", message: "busy"))) as? [String: String])
        #expect(object == ["code": "409 Conflict", "title": "Conflict", "message": "busy"])
    }
}
