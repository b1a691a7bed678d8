import Testing

// Which names can be staged files.
@testable import ImportCore

@Suite("Staged names")
struct StagedNameTests {
    @Test(
        "ordinary names, Glance's own and rsync's temporary ones are accepted",
        arguments: [
            "ab12cd34-0000-4000-8000-123456789abc", "ab12cd34-0000-4000-8000-123456789abc.qcow2", ".disk.img.Xa81Zq", "ünïcödé.raw",
            String(repeating: "x", count: 255),
        ])
    func accepted(name: String) throws {
        #expect(try StagedName(name).value == name)
    }

    @Test(
        "hostile names are refused with a reason",
        arguments: [
            ([UInt8](".".utf8), "cannot name"),
            ([UInt8]("..".utf8), "cannot name"),
            ([UInt8]("a/b".utf8), "'/'"),
            ([UInt8]("a\nb".utf8), "control character"),
            ([UInt8]("a\u{7f}".utf8), "control character"),
            ([0xff, 0xfe], "UTF-8"),
            ([], "empty"),
        ])
    func refused(bytes: [UInt8], reason: String) {
        #expect {
            _ = try StagedName(bytes: bytes)
        } throws: { error in
            guard let error = error as? StagingError, case .invalidName = error else { return false }
            return error.description.contains(reason)
        }
    }

    @Test("names over 255 bytes are too long")
    func tooLong() {
        #expect(throws: StagingError.nameTooLong(length: 256)) { try StagedName(String(repeating: "é", count: 128)) }
    }

    @Test("a project's name has its own key, which stands for the same name; no two project ids share a namespace")
    func projectNamespaces() throws {
        let name = try StagedName("disk.img")
        let placed = name.placed(inProject: "project-a")
        #expect(placed.value == ".projects/project-a/disk.img" && placed.shown == "disk.img" && placed.isInProjectNamespace)
        #expect(placed != name && placed != name.placed(inProject: "project-b"))
        #expect(try StagedName(key: placed.value) == placed)
        #expect(try StagedName(key: placed.value).shown == "disk.img")
        #expect(try !StagedName(key: "disk.img").isInProjectNamespace)
        #expect(throws: StagingError.self) { try StagedName(key: ".projects/project-a/a/b") }
        let ids = ["a/b", "a%2Fb", "..", ".", "", "%", "a.b", ".a", "%2Ea", "é", "e\u{301}", "ＡＢ"]
        let directories = ids.map(StagedName.directoryName(ofProject:))
        #expect(Set(directories).count == ids.count, "\(directories)")
        for directory in directories {
            #expect(!directory.contains("/") && directory != "." && directory != ".." && !directory.isEmpty, "\(directory)")
        }
    }

    @Test("only Glance's own names are shared: <image_id> and <image_id>.<ext>, the id exactly 8-4-4-4-12 hex digits")
    func sharedNames() {
        let id = "11111111-2222-4333-8444-555555555555"
        #expect(ProjectOwnershipPolicy.imageIDPrefix(of: id) == id)
        #expect(ProjectOwnershipPolicy.imageIDPrefix(of: id.uppercased()) == id.uppercased())
        #expect(ProjectOwnershipPolicy.imageIDPrefix(of: id + ".qcow2") == id)
        for free in [
            id + "x", id + ".", id + "\u{301}", " " + id, "  " + id, id + " ", "+" + id.dropFirst(), "{" + id + "}",
            "111111112222433384445555555555555555", "1111111-22222-4333-8444-555555555555", "g1111111-2222-4333-8444-555555555555",
        ] {
            #expect(ProjectOwnershipPolicy.imageIDPrefix(of: free) == nil, "'\(free)' is a free name")
        }
        #expect(ImageID.isValid(id) && !ImageID.isValid(" " + id) && !ImageID.isValid(id + "\n"))
    }
}
