// Names are bytes: two names Unicode calls canonically equivalent are two files, of two projects, sharing nothing.
import Foundation
import StagingTestSupport
import Testing

@Suite("Canonically equivalent names", .serialized)
struct EquivalentNamesTests {
    /// Pairs of names that Swift's `String ==` calls equal and the kernel calls different.
    static let twins: [(alices: String, bobs: String)] = [
        ("caf\u{E9}.img", "cafe\u{301}.img"),  // precomposed and decomposed é
        ("\u{212A}elvin.img", "Kelvin.img"),  // KELVIN SIGN and K
    ]

    /// The names in the mount as `user` lists them, as hex of their bytes (no String comparison in between).
    func listing(_ directory: String, as user: TestUser? = nil) throws -> Set<String> {
        let program = "import os\nfor n in os.listdir(\(pythonLiteral(directory))): print(os.fsencode(n).hex())"
        return Set(try python(program, as: user).stdout.split(separator: "\n").map(String.init))
    }

    @Test("a member of another project holding an equivalent twin open reads, writes and removes only its own file; each project's quota counts its own bytes")
    func equivalentNamesStayApart() throws {
        let alice = try TestUser.alice
        let bob = try TestUser.bob
        #expect(Self.twins.allSatisfy { $0.alices == $0.bobs && !$0.alices.utf8.elementsEqual($0.bobs.utf8) }, "the pairs are twins")
        let config = StagingMount.defaultConfig + "\n[quota:project-a]\nstage_quota_bytes = 20000\n"
        try withStagingMount(config: config) { mount throws in
            let owner = try MountClient(as: alice)
            let intruder = try MountClient(as: bob)
            defer { owner.close(); intruder.close() }
            let alicesData = Data((0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let bobsData = Data(repeating: 0x42, count: 3000)
            for (alices, bobs) in Self.twins {
                // Both files are open at once, each held by its owner: the daemon's tables keep them apart.
                guard case let .value(mine) = try owner.open(mount.path(alices), "w", flags: ["creat", "excl"]) else {
                    throw TestSetupError("alice cannot create \(alices)")
                }
                #expect(try owner.pwrite(mine, alicesData.prefix(3000), at: 0) == .value(3000))
                let opened = try intruder.open(mount.path(bobs), "rw", flags: ["creat", "excl"])
                guard case let .value(twin) = opened else { Issue.record("bob cannot create his twin: \(opened)"); continue }
                #expect(try intruder.pwrite(twin, bobsData, at: 0) == .value(3000))
                #expect(try owner.pwrite(mine, alicesData.suffix(3000), at: 3000) == .value(3000))
                #expect(try owner.close(mine).succeeded)
                #expect(try intruder.pread(twin, count: 10_000, at: 0) == .data(bobsData), "bob reads only his bytes")
                #expect(try intruder.ftruncate(twin, to: 0).succeeded)
                #expect(try intruder.pwrite(twin, bobsData, at: 0) == .value(3000))
                #expect(try intruder.close(twin).succeeded)
                #expect(try listing(mount.backing + "/.projects/project-a").contains(Data(alices.utf8).hexString), "alice's file on disk")
                #expect(try listing(mount.backing + "/.projects/project-b").contains(Data(bobs.utf8).hexString), "bob's file on disk")
                #expect(try owner.readFile(mount.path(alices)) == .data(alicesData), "alice's file is unchanged")
                #expect(try owner.xattr(mount.path(alices), "user.staging.size") == .text("6000"))
                #expect(try owner.xattr(mount.path(alices), "user.staging.state") == .text("staged"))
                #expect(try owner.xattr(mount.path(alices), "user.staging.os_hash_value") == .text(referenceDigest("sha512sum", of: alicesData)))
                #expect(try intruder.xattr(mount.path(bobs), "user.staging.size") == .text("3000"))
                #expect(try intruder.readFile(mount.path(alices)).errno != nil, "bob cannot read alice's file")
                #expect(try listing(mount.mountpoint, as: alice).contains(Data(alices.utf8).hexString), "alice sees her file")
                #expect(!(try listing(mount.mountpoint, as: bob).contains(Data(alices.utf8).hexString)), "bob does not see alice's")
                // bob removes his twin while he and alice both hold theirs open.
                guard case let .value(reader) = try owner.open(mount.path(alices), "r"),
                    case let .value(held) = try intruder.open(mount.path(bobs), "rw")
                else {
                    throw TestSetupError("the files cannot be opened again")
                }
                #expect(try intruder.unlink(mount.path(bobs)).succeeded)
                #expect(try intruder.close(held).succeeded)
                #expect(try owner.pread(reader, count: 10_000, at: 0) == .data(alicesData))
                #expect(try owner.close(reader).succeeded)
                #expect(try owner.readFile(mount.path(alices)) == .data(alicesData), "bob's removal left alice's file")
                #expect(try owner.xattr(mount.path(alices), "user.staging.state") == .text("staged"))
                #expect(try listing(mount.mountpoint, as: alice).contains(Data(alices.utf8).hexString))
            }
            // Project a holds 2 × 6000 bytes of 20000; bob's bytes were never counted there, nor given back from it.
            guard case let .value(more) = try owner.open(mount.path("more.img"), "w", flags: ["creat"]) else {
                throw TestSetupError("alice cannot create more.img")
            }
            #expect(try owner.pwrite(more, Data(count: 8000), at: 0) == .value(8000), "12000 + 8000 fits the quota")
            #expect(try owner.pwrite(more, Data(count: 1), at: 8000) == .failed(errno: "EDQUOT"), "and one byte more does not")
            #expect(try owner.close(more).succeeded)
            #expect(mount.isMounted)
        }
    }
}
