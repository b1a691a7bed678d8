// Random system calls with hostile arguments from several real users at once, against the real mount: the daemon
// never dies, and each project's quota usage always equals the sum of its files' sizes.
import Foundation
import StagingTestSupport
import Testing

@Suite("FUSE-level fuzz", .serialized)
struct FuseFuzzTests {
    static let cap: Int64 = 64 << 20
    static let quota: Int64 = 256 << 20

    /// Forks one child per user (setgroups, setgid, setuid: real credentials for the kernel to report), each
    /// making random calls for `seconds`, and prints one JSON line of tallies.
    static let program = #"""
        import errno, json, os, random, sys, time
        mount, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
        users = json.loads(sys.argv[4])
        cap = int(sys.argv[5])
        names = [b"a.img", b"b.img", b"shared", "caf\u00e9".encode(), "cafe\u0301".encode(), "\u212aelvin".encode(), b"Kelvin",
                 b"x" * 255, b"y" * 256, b"ctl\x01", b"\xff\xfe", b".", b"..", b"", b"sub/dir",
                 b"00000000-0000-4000-8000-000000000000", b"00000000-0000-4000-8000-000000000000.raw", b"tmp.~1~"]
        offsets = [0, 1, 4095, 4096, 65536, cap - 1, cap, cap + 1, 2**31, 2**40, 2**62, 2**63 - 1, 2**63 - 4096, -1, -2**63]

        def pick_size(r):
            return r.choice(offsets) if r.random() < 0.3 else r.randrange(0, 1 << 20)

        def fuzz(index, uid, gid, groups):
            r = random.Random(seed * 1000 + index)
            fds, tally = [], {}
            def path():
                return os.path.join(os.fsencode(mount), r.choice(names))
            ops = ["open", "write", "pwrite", "read", "ftruncate", "truncate", "rename", "unlink", "close",
                   "listdir", "stat", "getxattr", "setxattr", "chmod", "link", "symlink", "mkdir", "fallocate", "lseek",
                   "copy_file_range", "fsync", "utime"]
            if len(sys.argv) > 6: ops = sys.argv[6].split(",")  # FUZZ_OPS: narrow a failure down to some calls
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                op = r.choice(ops)
                try:
                    fd = r.choice(fds) if fds else -1
                    if op == "open":
                        flags = r.choice([os.O_RDONLY, os.O_WRONLY, os.O_RDWR]) | r.choice([0, os.O_CREAT, os.O_CREAT | os.O_EXCL, os.O_TRUNC, os.O_APPEND, os.O_CREAT | os.O_TRUNC])
                        fds.append(os.open(path(), flags, r.choice([0o644, 0o600, 0o4755, 0o777])))
                        if len(fds) > 16: os.close(fds.pop(0))
                    elif op == "write": os.write(fd, os.urandom(r.randrange(0, 70000)))
                    elif op == "pwrite": os.pwrite(fd, os.urandom(r.randrange(0, 70000)), pick_size(r))
                    elif op == "read": os.pread(fd, r.randrange(0, 1 << 20), pick_size(r))
                    elif op == "ftruncate": os.ftruncate(fd, pick_size(r))
                    elif op == "truncate": os.truncate(path(), pick_size(r))
                    elif op == "rename": os.rename(path(), path())
                    elif op == "unlink": os.unlink(path())
                    elif op == "close":
                        if fds: os.close(fds.pop(r.randrange(len(fds))))
                    elif op == "listdir": os.listdir(os.fsencode(mount))
                    elif op == "stat": os.stat(path())
                    elif op == "getxattr": os.getxattr(path(), r.choice(["user.staging.state", "user.staging.size", "user.x", "trusted.stagingfs.lent"]))
                    elif op == "setxattr": os.setxattr(path(), r.choice(["user.staging.state", "user.x"]), b"staged")
                    elif op == "chmod": os.chmod(path(), r.choice([0o644, 0o4755, 0o1777]))
                    elif op == "link": os.link(path(), path())
                    elif op == "symlink": os.symlink(b"/etc/shadow", path())
                    elif op == "mkdir": os.mkdir(path())
                    elif op == "fallocate": os.posix_fallocate(fd, pick_size(r), pick_size(r))
                    elif op == "lseek": os.lseek(fd, pick_size(r), r.choice([os.SEEK_SET, os.SEEK_END, os.SEEK_DATA, os.SEEK_HOLE]))
                    elif op == "copy_file_range":
                        if len(fds) >= 2: os.copy_file_range(fds[0], fds[-1], r.randrange(0, 1 << 20), pick_size(r), pick_size(r))
                    elif op == "fsync": os.fsync(fd)
                    elif op == "utime": os.utime(path(), ns=(pick_size(r) % (2**62), pick_size(r) % (2**62)))
                    outcome = "ok"
                except OSError as e:
                    outcome = errno.errorcode.get(e.errno, str(e.errno))
                except (ValueError, OverflowError):
                    outcome = "refused-locally"
                tally[op + ":" + outcome] = tally.get(op + ":" + outcome, 0) + 1
                if outcome == "ENOTCONN": break
            for fd in fds:
                try: os.close(fd)
                except OSError: pass
            return tally

        children = {}
        for index, (uid, gid, groups) in enumerate(users):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                os.setgroups(groups); os.setgid(gid); os.setuid(uid)
                tally = fuzz(index, uid, gid, groups)
                os.write(write_end, json.dumps(tally).encode()); os._exit(0)
            os.close(write_end)
            children[pid] = read_end
        merged = {}
        for pid, read_end in children.items():
            data = b""
            while chunk := os.read(read_end, 65536): data += chunk
            os.waitpid(pid, 0)
            for key, count in json.loads(data or b"{}").items(): merged[key] = merged.get(key, 0) + count
        print(json.dumps(merged))
        """#

    /// Each project's files (as the service user sees them through the mount) and the sum of their sizes.
    /// The bytes of each project's files, as `user` sees them in the mount (its project's files only).
    func usage(_ mount: StagingMount, as user: TestUser) throws -> [String: Int64] {
        let program = """
            import json, os, sys
            m = sys.argv[1]; sums = {}
            for n in os.listdir(os.fsencode(m)):
                p = os.path.join(os.fsencode(m), n)
                try: project = os.getxattr(p, "user.staging.project_id").decode()
                except OSError: project = "-"
                sums[project] = sums.get(project, 0) + os.stat(p).st_size
            print(json.dumps(sums))
            """
        let result = try run(["/usr/bin/python3", "-c", program, mount.mountpoint], as: user)
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.int64Value ?? -1 }
    }

    @Test(
        "four users (two of project a, one of b, one unmapped) make random hostile calls at once; the daemon serves throughout and each quota counts exactly its project's bytes"
    )
    func hostileCalls() throws {
        let seconds = ProcessInfo.processInfo.environment["FUSE_FUZZ_SECONDS"].flatMap(Double.init) ?? 20
        let seed = ProcessInfo.processInfo.environment["STAGINGFS_FUZZ_SEED"].flatMap(Int.init) ?? Int.random(in: 1...1_000_000)
        print("fuse-fuzz: seed \(seed) (STAGINGFS_FUZZ_SEED), \(seconds) s (FUSE_FUZZ_SECONDS)")
        let users = try [TestUser.alice, TestUser.carol, TestUser.bob, TestUser.eve].map { user in
            var count: Int32 = 64
            var groups = [gid_t](repeating: 0, count: 64)
            _ = getgrouplist(user.name, user.gid, &groups, &count)
            return [Int(user.uid), Int(user.gid), groups.prefix(Int(max(count, 0))).map(Int.init)] as [Any]
        }
        let usersJSON = String(decoding: try JSONSerialization.data(withJSONObject: users), as: UTF8.self)
        let config =
            StagingMount.defaultConfig + """

                [DEFAULT]
                image_size_cap = \(Self.cap)

                [quota:project-a]
                stage_quota_bytes = \(Self.quota)

                [quota:project-b]
                stage_quota_bytes = \(Self.quota)

                """
        try withStagingMount(config: config) { mount throws in
            let fuzzed = try run(
                ["/usr/bin/python3", "-c", Self.program, mount.mountpoint, "\(seconds)", "\(seed)", usersJSON, "\(Self.cap)"]
                    + (ProcessInfo.processInfo.environment["FUZZ_OPS"].map { [$0] } ?? []))
            #expect(fuzzed.succeeded, "\(fuzzed)")
            let tally = (try? JSONSerialization.jsonObject(with: Data(fuzzed.stdout.utf8)) as? [String: Int]) ?? [:]
            let calls = tally.values.reduce(0, +)
            print("fuse-fuzz: \(calls) calls, \(tally.count) distinct outcomes, seed \(seed)")
            #expect(calls > 0, "\(fuzzed)")
            #expect(
                !tally.keys.contains { $0.hasSuffix(":ENOTCONN") || $0.hasSuffix(":EIO") },
                "the daemon served every call: \(tally.filter { $0.key.hasSuffix(":ENOTCONN") || $0.key.hasSuffix(":EIO") })")
            #expect(mount.isMounted, "the daemon is alive:\n\(mount.log.suffix(4000))")
            // The ledger's usage of each project is its files' sizes: exactly the quota's rest can still be taken.
            for (project, user) in [("project-a", try TestUser.alice), ("project-b", try TestUser.bob)] {
                let sums = try usage(mount, as: user)
                var rest = Self.quota - (sums[project] ?? 0)
                #expect(rest >= 0, "\(project) holds \(sums[project] ?? 0) bytes, over its quota")
                var index = 0
                while rest > 0 {
                    let size = min(rest, Self.cap)
                    let filled = try run(["truncate", "-s", "\(size)", mount.path("fill-\(project)-\(index)")], as: user)
                    #expect(filled.succeeded, "\(project): \(size) of its remaining \(rest) bytes must fit: \(filled)")
                    if !filled.succeeded { break }
                    rest -= size
                    index += 1
                }
                let over = try run(["truncate", "-s", "1", mount.path("over-\(project)")], as: user)
                #expect(!over.succeeded && over.stderr.contains("quota"), "\(project): one byte past its quota is refused: \(over)")
            }
        }
    }
}
