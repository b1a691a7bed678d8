// The attack table: each row an attack on another project's file or image, who runs it, through the mount or
// the API, and the answer it must get; after every row the victim's file and image are unchanged and the daemon
// answers. docs/policy.md lists the rows.
import Foundation
import StagingTestSupport
import Testing

@Suite("Attack table", .serialized)
struct AttackTableTests {
    enum Attacker: String { case otherProject = "bob (project-b)", unmapped = "eve (unmapped)" }

    /// One attack through the mount: Python `os` calls as the attacker; `expected` is the errno's name.
    struct MountAttack: CustomStringConvertible {
        var name: String
        var by: Attacker
        var call: String
        var expected: String
        var description: String { "\(name) by \(by.rawValue): \(expected)" }
    }

    /// `V` is the victim's file, `I` the victim's image's data name, `M` a file of bob's own.
    static let mountAttacks: [MountAttack] = [
        MountAttack(name: "stat the victim's file", by: .otherProject, call: "os.stat(V)", expected: "ENOENT"),
        MountAttack(name: "read it", by: .otherProject, call: "os.open(V, os.O_RDONLY)", expected: "ENOENT"),
        MountAttack(name: "open it for writing", by: .otherProject, call: "os.open(V, os.O_WRONLY)", expected: "ENOENT"),
        MountAttack(name: "open it with O_TRUNC", by: .otherProject, call: "os.open(V, os.O_WRONLY | os.O_TRUNC)", expected: "ENOENT"),
        // Free names are per project: bob's `V` is a file of his own, never the victim's.
        MountAttack(
            name: "take its name (O_CREAT | O_EXCL)", by: .otherProject,
            call: "os.close(os.open(V, os.O_WRONLY | os.O_CREAT | os.O_EXCL)); os.unlink(V)", expected: "OK"),
        MountAttack(name: "truncate it", by: .otherProject, call: "os.truncate(V, 0)", expected: "ENOENT"),
        MountAttack(name: "remove it", by: .otherProject, call: "os.unlink(V)", expected: "ENOENT"),
        MountAttack(name: "rename it away", by: .otherProject, call: "os.rename(V, M + '.moved')", expected: "ENOENT"),
        MountAttack(name: "rename one's own file over it", by: .otherProject, call: "os.rename(M, V); os.rename(V, M)", expected: "OK"),
        MountAttack(name: "hard-link it", by: .otherProject, call: "os.link(V, M + '.link')", expected: "ENOENT"),
        MountAttack(name: "read its attributes", by: .otherProject, call: "os.getxattr(V, 'user.staging.os_hash_value')", expected: "ENOENT"),
        MountAttack(name: "set its state attribute", by: .otherProject, call: "os.setxattr(V, 'user.staging.state', b'staged')", expected: "ENOENT"),
        MountAttack(name: "chmod it", by: .otherProject, call: "os.chmod(V, 0o666)", expected: "ENOENT"),
        MountAttack(name: "set its times", by: .otherProject, call: "os.utime(V, (0, 0))", expected: "ENOENT"),
        MountAttack(name: "write the victim's image's data", by: .otherProject, call: "os.open(I, os.O_WRONLY | os.O_CREAT)", expected: "EACCES"),
        MountAttack(name: "rename one's own file onto the victim's image's data", by: .otherProject, call: "os.rename(M, I)", expected: "EACCES"),
        MountAttack(
            name: "take an intermediate name of the victim's image", by: .otherProject, call: "os.open(I + '.raw', os.O_WRONLY | os.O_CREAT)",
            expected: "EACCES"),
        MountAttack(
            name: "see the victim's file in a listing", by: .otherProject,
            call: "assert V.split('/')[-1] not in os.listdir(os.path.dirname(V)); raise OSError(errno.ENOENT, 'hidden')", expected: "ENOENT"),
        MountAttack(name: "truncate one's own file to 8 EiB (ledger overflow)", by: .otherProject, call: "os.truncate(M, 2**63 - 1)", expected: "EFBIG"),
        MountAttack(
            name: "write a VHD whose table sits at 2^63 - 256, in one write (inspector range overflow)", by: .otherProject,
            call: "b = bytearray(4096); b[0:8] = b'conectix'; b[60:64] = (3).to_bytes(4, 'big'); "
                + "b[16:24] = (0x7FFFFFFFFFFFFF00).to_bytes(8, 'big'); b[48:56] = (1 << 20).to_bytes(8, 'big'); "
                + "fd = os.open(M + '.vhd', os.O_WRONLY | os.O_CREAT); os.write(fd, bytes(b)); os.close(fd)", expected: "EMEDIUMTYPE"),
        MountAttack(
            name: "set one's own file's times past 2262 (nanosecond overflow)", by: .otherProject,
            call: "os.utime(M, (2**34, 2**34)); os.utime(M, (-2**34, -2**34))", expected: "OK"),
        MountAttack(name: "list the staging directory", by: .unmapped, call: "os.listdir(os.path.dirname(V))", expected: "EACCES"),
        MountAttack(name: "stat the victim's file", by: .unmapped, call: "os.stat(V)", expected: "EACCES"),
        MountAttack(name: "read it", by: .unmapped, call: "os.open(V, os.O_RDONLY)", expected: "EACCES"),
        MountAttack(name: "create a file", by: .unmapped, call: "os.open(M + '.eve', os.O_WRONLY | os.O_CREAT)", expected: "EACCES"),
        MountAttack(name: "remove the victim's file", by: .unmapped, call: "os.unlink(V)", expected: "EACCES"),
        MountAttack(name: "stat the mount itself", by: .unmapped, call: "os.stat(os.path.dirname(V))", expected: "EACCES"),
        MountAttack(name: "statvfs the mount", by: .unmapped, call: "os.statvfs(os.path.dirname(V))", expected: "EACCES"),
        MountAttack(name: "list the mount's attributes", by: .unmapped, call: "os.listxattr(os.path.dirname(V))", expected: "EACCES"),
        MountAttack(name: "stat the reserved name .projects", by: .unmapped, call: "os.stat(os.path.dirname(V) + '/.projects')", expected: "EACCES"),
    ]

    /// One attack through the API socket; `path` has `{id}` for the victim's image.
    struct APIAttack: CustomStringConvertible {
        var name: String
        var by: Attacker
        var method: String
        var path: String
        var json: String?
        var contentType = "application/json"
        var expected: Int
        var description: String { "\(name) by \(by.rawValue): \(expected)" }
    }

    static let patch = "application/openstack-images-v2.1-json-patch"
    static let apiAttacks: [APIAttack] = [
        APIAttack(name: "show the victim's image", by: .otherProject, method: "GET", path: "/v2/images/{id}", expected: 404),
        APIAttack(
            name: "rename it", by: .otherProject, method: "PATCH", path: "/v2/images/{id}",
            json: #"[{"op": "replace", "path": "/name", "value": "mine"}]"#, contentType: patch, expected: 404),
        APIAttack(name: "delete it", by: .otherProject, method: "DELETE", path: "/v2/images/{id}", expected: 404),
        APIAttack(
            name: "stage data into it", by: .otherProject, method: "PUT", path: "/v2/images/{id}/stage", json: "evil",
            contentType: "application/octet-stream", expected: 404),
        APIAttack(
            name: "import it", by: .otherProject, method: "POST", path: "/v2/images/{id}/import",
            json: #"{"method": {"name": "glance-direct"}}"#, expected: 404),
        APIAttack(name: "list its tasks", by: .otherProject, method: "GET", path: "/v2/images/{id}/tasks", expected: 404),
        APIAttack(
            name: "create an image with a reserved property", by: .otherProject, method: "POST", path: "/v2/images",
            json: #"{"name": "x", "os_glance_import_task": "t"}"#, expected: 403),
        APIAttack(name: "list images", by: .unmapped, method: "GET", path: "/v2/images", expected: 403),
        APIAttack(name: "show the victim's image", by: .unmapped, method: "GET", path: "/v2/images/{id}", expected: 403),
        APIAttack(name: "delete it", by: .unmapped, method: "DELETE", path: "/v2/images/{id}", expected: 403),
        APIAttack(name: "read the import methods", by: .unmapped, method: "GET", path: "/v2/info/import", expected: 403),
        APIAttack(name: "read where the mount is", by: .unmapped, method: "GET", path: "/v2/info/stagingfs", expected: 403),
        APIAttack(
            name: "create an image whose id has a space before it", by: .otherProject, method: "POST", path: "/v2/images",
            json: #"{"name": "x", "id": " 33333333-2222-4333-8444-555555555555"}"#, expected: 400),
    ]

    @Test("every attack on another project's file or image gets its answer; the victim's file and image are unchanged after each, and the daemon answers")
    func attackTable() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob, eve = try TestUser.eve
        try withStagingMount { mount throws in
            let victim = mount.path("victim.img")
            #expect(try run(["sh", "-c", "head -c 200000 /dev/urandom > \(victim)"], as: alice).succeeded)
            let fileHash = try digest("sha512sum", of: mount.backingPath("victim.img", project: "project-a"))
            let source = mount.sourcePath("image.raw")
            try makeRandomFile(source, bytes: 300_000)
            let imported = try mount.importctlJSON(["image-create-via-import", "--file", source], as: alice)
            let id = try #require(imported["id"] as? String)
            let before = try mount.importctlJSON(["image-show", id], as: alice)
            let own = mount.path("bobs.img")
            #expect(try run(["sh", "-c", "echo mine > \(own)"], as: bob).succeeded)
            var results: [String] = []

            func victimIsIntact(after row: String) throws {
                #expect(
                    try digest("sha512sum", of: mount.backingPath("victim.img", project: "project-a")) == fileHash, "the victim's file changed after: \(row)")
                let after = try mount.importctlJSON(["image-show", id], as: alice)
                for key in ["status", "name", "checksum", "os_hash_value", "size"] {
                    #expect("\(after[key] ?? "-")" == "\(before[key] ?? "-")", "the victim's image's \(key) changed after: \(row)")
                }
                #expect(mount.isMounted, "the daemon is gone after: \(row)")
            }

            for attack in Self.mountAttacks {
                let program = """
                    import errno, os
                    V, I, M = \(pythonLiteral(victim)), \(pythonLiteral(mount.path(id))), \(pythonLiteral(own))
                    try:
                        \(attack.call)
                        print("OK")
                    except OSError as e:
                        print(errno.errorcode[e.errno])
                    """
                let answer = try python(program, as: attack.by == .otherProject ? bob : eve).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(answer == attack.expected, "\(attack.name) by \(attack.by.rawValue): \(answer)")
                results.append("mount | \(attack.by.rawValue) | \(attack.name) | \(answer)")
                try victimIsIntact(after: attack.name)
            }
            for attack in Self.apiAttacks {
                let path = attack.path.replacingOccurrences(of: "{id}", with: id)
                let answer = try mount.request(
                    attack.method, path, json: attack.json, contentType: attack.contentType,
                    as: attack.by == .otherProject ? bob : eve)
                #expect(answer.status == attack.expected, "\(attack.name) by \(attack.by.rawValue): \(answer)")
                results.append("API | \(attack.by.rawValue) | \(attack.name) | \(answer.status)")
                try victimIsIntact(after: attack.name)
            }
            print("attack-table: \(results.count) rows\n" + results.joined(separator: "\n"))
        }
    }

    /// Every call a member of another project can make on a name, as (label, Python statement on `X`).
    static let probes: [(String, String)] = [
        ("stat", "os.stat(X)"), ("lstat", "os.lstat(X)"), ("access", "assert os.access(X, os.F_OK), 'no'"),
        ("open for reading", "os.close(os.open(X, os.O_RDONLY))"), ("open for writing", "os.close(os.open(X, os.O_WRONLY))"),
        ("open with O_TRUNC", "os.close(os.open(X, os.O_WRONLY | os.O_TRUNC))"), ("truncate", "os.truncate(X, 0)"),
        ("create exclusively", "os.close(os.open(X, os.O_WRONLY | os.O_CREAT | os.O_EXCL)); os.unlink(X)"),
        ("create", "os.close(os.open(X, os.O_WRONLY | os.O_CREAT)); os.unlink(X)"),
        ("rename onto it without replacing", "renameat2(M, X, 1); os.rename(X, M)"),
        ("rename onto it", "os.rename(M, X); os.rename(X, M)"),
        ("rename it away", "os.rename(X, M + '.away')"), ("hard-link it", "os.link(X, M + '.link')"),
        ("link onto it", "os.link(M, X)"), ("symlink onto it", "os.symlink('target', X)"), ("mkdir onto it", "os.mkdir(X)"),
        ("mknod onto it", "os.mkfifo(X)"), ("unlink", "os.unlink(X)"),
        ("getxattr", "os.getxattr(X, 'user.staging.state')"), ("listxattr", "os.listxattr(X)"),
        ("setxattr", "os.setxattr(X, 'user.other', b'1')"), ("chmod", "os.chmod(X, 0o600)"), ("utime", "os.utime(X, (0, 0))"),
        ("chown", "os.chown(X, os.getuid(), os.getgid())"),
        ("in the listing", "assert os.path.basename(X) in os.listdir(os.path.dirname(X)), 'absent'"),
    ]

    /// Free names alice holds: an ordinary one, and names that look like an image id but are not exactly one
    /// (they once escaped the project namespace).
    static let heldNames = [
        "held.img", "11111111-2222-4333-8444-555555555555x", "11111111-2222-4333-8444-555555555555\u{301}",
        " 11111111-2222-4333-8444-555555555555", "11111111-2222-4333-8444-555555555555.",
    ]

    @Test("no oracle: a free name another project holds answers every call exactly as a name nobody holds")
    func noExistenceOracle() throws {
        let alice = try TestUser.alice, bob = try TestUser.bob, carol = try TestUser.carol
        try withStagingMount { mount throws in
            let own = mount.path("bobs.img"), held = mount.path("held.img")
            for name in Self.heldNames {
                let written = try python("open(\(pythonLiteral(mount.path(name))), 'wb').write(b'alice' * 1000)", as: alice)
                #expect(written.succeeded, "\(written)")
                #expect(FileManager.default.fileExists(atPath: mount.backingPath(name, project: "project-a")), "'\(name)' is in alice's namespace")
            }
            #expect(try run(["sh", "-c", "echo mine > \(own)"], as: bob).succeeded)
            let heldHash = try digest("sha512sum", of: mount.backingPath("held.img", project: "project-a"))
            let rows = Self.probes.map { label, call in
                """
                    try:
                        \(call)
                        out.append((\(pythonLiteral(label)), "OK"))
                    except AssertionError as e:
                        out.append((\(pythonLiteral(label)), str(e)))
                    except OSError as e:
                        out.append((\(pythonLiteral(label)), errno.errorcode[e.errno]))
                """
            }.joined(separator: "\n")
            let program = """
                import ctypes, errno, json, os, sys
                libc = ctypes.CDLL(None, use_errno=True)
                def renameat2(a, b, flags):
                    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) != 0:
                        raise OSError(ctypes.get_errno(), "renameat2")
                M = sys.argv[1]
                answers = {}
                for X in sys.argv[2:]:
                    out = []
                \(rows)
                    answers[X] = out
                print(json.dumps(answers))
                """
            func answers(as user: TestUser, own: String, held: String) throws -> (held: [String], free: [String]) {
                let result = try python(program, arguments: [own, held, mount.path("nobody.img")], as: user)
                let decoded = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [[String]]], "\(result)")
                return (
                    decoded[held, default: []].map { $0.joined(separator: ": ") },
                    decoded[mount.path("nobody.img"), default: []].map { $0.joined(separator: ": ") }
                )
            }
            var bobs: (held: [String], free: [String]) = ([], [])
            for name in Self.heldNames {
                bobs = try answers(as: bob, own: own, held: mount.path(name))
                #expect(bobs.held.count == Self.probes.count)
                for (held, free) in zip(bobs.held, bobs.free) { #expect(held == free, "bob can tell alice holds '\(name)': \(held) / \(free)") }
            }
            print(
                "no-oracle: \(bobs.held.count) calls by bob (project-b) on each of \(Self.heldNames.count) names alice holds and on a free name:\n"
                    + bobs.held.joined(separator: "\n"))
            #expect(try digest("sha512sum", of: mount.backingPath("held.img", project: "project-a")) == heldHash, "alice's file changed")
            // The probe can tell: carol, of alice's project, sees the name as taken.
            #expect(try run(["sh", "-c", "echo mine > \(mount.path("carols.img"))"], as: carol).succeeded)
            let carols = try answers(as: carol, own: mount.path("carols.img"), held: held)
            #expect(carols.held.contains("stat: OK") && carols.free.contains("stat: ENOENT"), "\(carols)")
            #expect(mount.isMounted)
        }
    }
}
