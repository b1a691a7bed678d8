// What Glance 33 answers and unmodified clients rely on, checked over TCP: error forms by Accept, request ids,
// create headers, schemas, 405 with Allow, list pagination and its 400s, read-only attributes.
import Foundation
import StagingTestSupport
import Testing

@Suite("Glance v2 compatibility over TCP", .serialized)
struct GlanceCompatibilityTests {
    static let newImage = #"{"name": "compat", "disk_format": "raw", "container_format": "bare"}"#

    @Test("errors come as webob renders Glance's: text/plain without Accept, JSON for application/json, HTML for */*; every answer has a request id")
    func errorForms() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            let missing = base + "/v2/images/" + UUID().uuidString.lowercased()
            let plain = try curl("GET", missing, headers: ["Accept:"])
            #expect(plain.status == 404 && plain.headers["content-type"] == "text/plain; charset=UTF-8", "\(plain)")
            #expect(plain.body.hasPrefix("404 Not Found\n\n"), "\(plain)")
            let json = try curl("GET", missing, headers: ["Accept: application/json"])
            #expect(json.headers["content-type"] == "application/json", "\(json)")
            #expect(json.json?["code"] as? String == "404 Not Found" && json.json?["title"] as? String == "Not Found", "\(json)")
            let html = try curl("GET", missing, headers: ["Accept: */*"])
            #expect(html.headers["content-type"] == "text/html; charset=UTF-8" && html.body.contains("<h1>404 Not Found</h1>"), "\(html)")
            for answer in [plain, json, html, try curl("GET", base + "/v2/images")] {
                #expect(answer.headers["x-openstack-request-id"]?.hasPrefix("req-") == true, "\(answer)")
            }
        }
    }

    @Test("create answers 201 with an absolute Location and OpenStack-image-import-methods; read-only attributes are 403")
    func createHeaders() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            let created = try curl("POST", base + "/v2/images", json: Self.newImage)
            let id = try #require(created.json?["id"] as? String)
            #expect(created.headers["location"] == base + "/v2/images/" + id, "\(created)")
            #expect(created.headers["openstack-image-import-methods"] == "glance-direct,web-download", "\(created)")
            for (key, value) in [("status", "\"active\""), ("size", "5"), ("checksum", "\"abc\""), ("os_hash_value", "\"x\"")] {
                let refused = try curl("POST", base + "/v2/images", headers: ["Accept:"], json: #"{"name": "ro", "\#(key)": \#(value)}"#)
                #expect(refused.status == 403 && refused.body.contains("Attribute '\(key)' is read-only."), "\(refused)")
            }
        }
    }

    @Test("the schemas glanceclient builds its models from describe what the API sends; a wrong method is 405 with Allow")
    func schemasAndMethods() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            let image = try curl("GET", base + "/v2/schemas/image")
            #expect(image.status == 200 && image.json?["name"] as? String == "image", "\(image)")
            let properties = try #require(image.json?["properties"] as? [String: Any])
            let created = try #require(try curl("POST", base + "/v2/images", json: Self.newImage).json)
            for key in created.keys { #expect(properties[key] != nil, "the schema describes '\(key)'") }
            for name in ["images", "task", "tasks"] { #expect(try curl("GET", base + "/v2/schemas/" + name).status == 200) }
            #expect(try curl("GET", base + "/v2/schemas/bogus").status == 404)
            let wrong = try curl("PUT", base + "/v2/images", json: "{}")
            #expect(wrong.status == 405 && wrong.headers["allow"] == "GET, POST", "\(wrong)")
            let plainJSON = try curl(
                "PATCH", base + "/v2/images/\(created["id"] as? String ?? "")", json: #"[{"op": "replace", "path": "/name", "value": "x"}]"#)
            #expect(
                plainJSON.status == 415 && plainJSON.headers["accept-patch"]?.contains("application/openstack-images-v2.1-json-patch") == true, "\(plainJSON)")
            let onImage = try curl("POST", base + "/v2/images/\(created["id"] as? String ?? "")", json: "{}")
            #expect(onImage.status == 405 && onImage.headers["allow"] == "GET, PATCH, DELETE", "\(onImage)")
        }
    }

    @Test("GET /v2/images pages with limit and marker, links first and next as Glance does, filters and sorts; bad values are 400")
    func listPagination() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            for index in 0..<5 {
                let made = try curl(
                    "POST", base + "/v2/images",
                    json: #"{"name": "list\#(index)", "disk_format": "\#(index == 4 ? "qcow2" : "raw")", "container_format": "bare"}"#)
                #expect(made.status == 201)
            }
            var names: [String] = []
            var next: String? = "/v2/images?limit=2&sort_key=name&sort_dir=asc"
            var pages = 0
            while let link = next, pages < 10 {
                let page = try curl("GET", base + link)
                #expect(page.status == 200, "\(page)")
                #expect(page.json?["first"] as? String == "/v2/images?limit=2&sort_key=name&sort_dir=asc", "\(page)")
                names += (page.json?["images"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                next = page.json?["next"] as? String
                pages += 1
            }
            #expect(names == ["list0", "list1", "list2", "list3", "list4"] && pages == 3, "\(names) in \(pages) pages")
            let newest = try curl("GET", base + "/v2/images?limit=1")
            #expect((newest.json?["images"] as? [[String: Any]])?.first?["name"] as? String == "list4", "created_at descending by default")
            let qcow2 = try curl("GET", base + "/v2/images?disk_format=qcow2")
            #expect((qcow2.json?["images"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["list4"], "\(qcow2)")
            for bad in [
                "marker=" + UUID().uuidString.lowercased(), "marker=garbage", "limit=-1", "limit=abc", "sort_key=bogus", "sort_dir=sideways",
                "sort=name:sideways", "visibility=bogus", "size_min=big",
            ] {
                let refused = try curl("GET", base + "/v2/images?" + bad)
                #expect(refused.status == 400, "\(bad): \(refused)")
            }
        }
    }

    @Test("tags, min_disk, min_ram and os_hidden are kept with their JSON types, patched, filtered on; a hidden image leaves the default list")
    func typedAttributes() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            let created = try curl(
                "POST", base + "/v2/images", json: #"{"name": "typed", "tags": ["x", "y", "x"], "min_disk": 1, "min_ram": 2, "os_hidden": true}"#)
            #expect(created.status == 201, "\(created)")
            let id = try #require(created.json?["id"] as? String)
            #expect(created.json?["tags"] as? [String] == ["x", "y"] && created.json?["min_disk"] as? Int == 1, "\(created)")
            #expect(created.json?["min_ram"] as? Int == 2 && created.json?["os_hidden"] as? Bool == true, "\(created)")
            let listed = try curl("GET", base + "/v2/images")
            #expect(!listed.body.contains(id), "hidden images are not in the default list")
            #expect(try curl("GET", base + "/v2/images?os_hidden=true").body.contains(id))
            let patch = "application/openstack-images-v2.1-json-patch"
            let patched = try curl(
                "PATCH", base + "/v2/images/\(id)",
                json:
                    #"[{"op": "replace", "path": "/tags", "value": ["z"]}, {"op": "replace", "path": "/min_disk", "value": 5}, {"op": "replace", "path": "/os_hidden", "value": false}]"#,
                contentType: patch)
            #expect(patched.status == 200 && patched.json?["tags"] as? [String] == ["z"] && patched.json?["min_disk"] as? Int == 5, "\(patched)")
            let tagged = try curl("GET", base + "/v2/images?tag=z")
            #expect((tagged.json?["images"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id], "\(tagged)")
            #expect(try curl("GET", base + "/v2/images?tag=x").body.contains(id) == false)
            let longName = String(repeating: "n", count: 256)
            for body in [#"{"min_disk": "1"}"#, #"{"min_disk": -1}"#, #"{"os_hidden": "true"}"#, #"{"tags": "x"}"#, #"{"name": "\#(longName)"}"#] {
                #expect(try curl("POST", base + "/v2/images", json: body).status == 400, "\(body)")
            }
            // A flood of tags or properties is refused at once (413), not worked through under the catalog's lock.
            let manyTags = "[" + (0..<100_000).map { "\"\(String($0, radix: 16))\"" }.joined(separator: ",") + "]"
            let flood = "/tmp/stagingfs-tests/tags-\(UUID().uuidString.prefix(8)).json"
            try #"[{"op": "replace", "path": "/tags", "value": \#(manyTags)}]"#.write(toFile: flood, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: flood) }
            let tagFlood = try curl("PATCH", base + "/v2/images/\(id)", headers: ["Content-Type: \(patch)"], extra: ["--data-binary", "@" + flood])
            #expect(tagFlood.status == 413, "\(tagFlood.status)")
            let manyProperties = (0..<200).map { "\"k\($0)\": \"v\"" }.joined(separator: ", ")
            #expect(try curl("POST", base + "/v2/images", json: "{\(manyProperties)}").status == 413)
            #expect(try curl("POST", base + "/v2/images", json: Self.newImage).status == 201, "the catalog is free again")
            let wrongType = try curl("PATCH", base + "/v2/images/\(id)", json: #"[{"op": "replace", "path": "/min_ram", "value": "9"}]"#, contentType: patch)
            #expect(wrongType.status == 400, "\(wrongType)")
        }
    }

    @Test("PUT /file uploads through the write path (hashed, inspected) and the image is active; GET /file streams it back with Content-MD5")
    func directUploadAndDownload() throws {
        try TCPListenerTests.withTCPMount { mount, base, _ throws in
            let source = mount.sourcePath("direct.raw")
            try makeRandomFile(source, bytes: 5 << 20)
            let id = try #require(try curl("POST", base + "/v2/images", json: Self.newImage).json?["id"] as? String)
            #expect(try curl("GET", base + "/v2/images/\(id)/file").status == 204, "a queued image has no data")
            let staging = try #require(try curl("POST", base + "/v2/images", json: Self.newImage).json?["id"] as? String)
            #expect(try curl("PUT", base + "/v2/images/\(staging)/stage", file: source).status == 204)
            let staged = try curl("GET", base + "/v2/images/\(staging)")
            #expect(staged.json?["status"] as? String == "uploading" && staged.json?["size"] as? Int == 5 << 20, "Glance shows the staged size: \(staged)")
            let uploaded = try curl("PUT", base + "/v2/images/\(id)/file", file: source)
            #expect(uploaded.status == 204, "\(uploaded)")
            let image = try curl("GET", base + "/v2/images/\(id)")
            let sha512 = try digest("sha512sum", of: source)
            #expect(image.json?["status"] as? String == "active" && image.json?["os_hash_value"] as? String == sha512, "\(image)")
            let copy = mount.sourcePath("downloaded.raw")
            let downloaded = try curl("GET", base + "/v2/images/\(id)/file", output: copy)
            let md5 = try digest("md5sum", of: source)
            #expect(downloaded.status == 200 && downloaded.headers["content-md5"] == md5, "\(downloaded)")
            #expect(try digest("sha512sum", of: copy) == sha512, "the bytes come back as stored")
            #expect(try curl("PUT", base + "/v2/images/\(id)/file", file: source).status == 409, "an active image takes no more data")
            // A delete during a download does not cut it short: the file was opened before the answer began.
            let slow = Process()
            slow.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            let racing = mount.sourcePath("racing.raw")
            slow.arguments = ["-sS", "--limit-rate", "1M", "-o", racing, "-w", "%{http_code}", base + "/v2/images/\(id)/file"]
            let status = Pipe()
            slow.standardOutput = status
            try slow.run()
            _ = waitFor(10) { ((try? FileManager.default.attributesOfItem(atPath: racing)[.size] as? Int) ?? 0) > 0 }
            #expect(try curl("DELETE", base + "/v2/images/\(id)").status == 204)
            slow.waitUntilExit()
            let code = String(decoding: status.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let received = try digest("sha512sum", of: racing)
            #expect(code == "200" && received == sha512, "the download finished whole: \(code)")
            let formatless = try #require(try curl("POST", base + "/v2/images", json: #"{"name": "no-format"}"#).json?["id"] as? String)
            let refused = try curl("PUT", base + "/v2/images/\(formatless)/file", headers: ["Accept:"], file: source)
            #expect(refused.status == 400 && refused.body.contains("disk_format, container_format must be set"), "\(refused)")
            // A qcow2 header under disk_format raw is refused by the inspector, as a staged file would be.
            let qcow2 = mount.sourcePath("disk.qcow2")
            #expect(try run(["qemu-img", "create", "-q", "-f", "qcow2", qcow2, "16M"]).succeeded)
            let mismatched = try #require(try curl("POST", base + "/v2/images", json: Self.newImage).json?["id"] as? String)
            let inspected = try curl("PUT", base + "/v2/images/\(mismatched)/file", headers: ["Accept:"], file: qcow2)
            #expect(inspected.status == 400 && inspected.body.contains("qcow2"), "\(inspected)")
            #expect(try curl("GET", base + "/v2/images/\(mismatched)").json?["status"] as? String == "queued")
        }
    }
}
