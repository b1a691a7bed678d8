import Testing

// The inode table and the mount table, without a mount.
@testable import StagingFS

@Suite("Inode table")
struct InodeTableTests {
    @Test("lookup adds, forget subtracts, zero frees, the root is pinned")
    func lookupCounts() {
        let table = InodeTable()
        let ino = table.remember(name: "a", backingInode: 100)
        #expect(ino != InodeTable.root)
        #expect(table.remember(name: "a", backingInode: 100) == ino)
        #expect(table.node(ino)?.lookups == 2)
        table.forget(ino, count: 1)
        #expect(table.node(ino)?.lookups == 1)
        table.forget(ino, count: 1)
        #expect(table.node(ino) == nil)
        table.forget(InodeTable.root, count: 5)
        #expect(table.count == 0)
        let again = table.remember(name: "a", backingInode: 100)
        #expect(again != ino, "a freed number is not reused while the kernel might still cache it")
    }

    @Test("a rename keeps the inode number under the new name")
    func rename() {
        let table = InodeTable()
        let ino = table.remember(name: "tmp", backingInode: 7)
        table.renamed(backingInode: 7, to: "final")
        #expect(table.node(ino)?.name == "final")
    }
}

@Suite("Mount table")
struct MountTableTests {
    @Test("finds mounts at a path, unescaping mountinfo's octal escapes")
    func parses() {
        let mountinfo = """
            22 1 0:21 / /proc rw,nosuid - proc proc rw
            97 22 0:55 / /tmp/my\\040mount rw,nosuid,nodev,relatime - fuse.stagingfs stagingfs:/srv/staging rw,user_id=0
            98 22 0:56 / /tmp/other rw - tmpfs tmpfs rw
            """
        #expect(
            MountTable.entries(at: "/tmp/my mount", mountinfo: mountinfo) == [
                MountEntry(mountpoint: "/tmp/my mount", filesystemType: "fuse.stagingfs", source: "stagingfs:/srv/staging")
            ])
        #expect(MountTable.entries(at: "/tmp/none", mountinfo: mountinfo).isEmpty)
    }
}
