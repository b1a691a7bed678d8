// Random sequences of system calls by three real users (two projects) through a real mount, with imports,
// restarts and kill -9 among them, checked after every step against StagingModel: sizes, bytes, the
// `user.staging.*` attributes, what the other project sees, and what the API says of imported images.
// STAGINGFS_MODEL_SEED replays a run; STAGINGFS_MODEL_SECONDS bounds it (default 45).
import Foundation
import StagingTestSupport
import Testing

@Suite("Model-based: the mount against a model of what each file must be", .serialized)
struct ModelTests {
    @Test("random create/open/write/truncate/close/rename/unlink/import/restart/kill by several users agree with the model after every step")
    func randomOperations() throws {
        let seed = ProcessInfo.processInfo.environment["STAGINGFS_MODEL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        let seconds = ProcessInfo.processInfo.environment["STAGINGFS_MODEL_SECONDS"].flatMap { Double($0) } ?? 45
        print("model: seed \(seed) (replay with STAGINGFS_MODEL_SEED=\(seed))")
        let mount = try StagingMount()
        defer { mount.tearDown() }
        try mount.start()
        var run = try ModelRun(mount: mount, seed: seed)
        defer { run.closeClients() }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, run.mismatches.isEmpty {
            try run.step()
            try run.check()
        }
        print(
            "model: \(run.steps) steps (\(run.imports) imports, \(run.restarts) restarts, \(run.crashes) kills), seed \(seed), \(run.mismatches.count) mismatches"
        )
        #expect(
            run.mismatches.isEmpty,
            "seed \(seed), after:\n\(run.history.suffix(ProcessInfo.processInfo.environment["STAGINGFS_MODEL_SEED"] == nil ? 25 : 100_000).joined(separator: "\n"))\nmismatches:\n\(run.mismatches.joined(separator: "\n"))"
        )
        #expect(run.steps > 0)
    }
}

/// One run: the clients, the model, the random choices and what was seen.
struct ModelRun {
    let mount: StagingMount
    var random: SplitMix
    var model = StagingModel()
    /// alice and carol (by group) are project-a; bob is project-b.
    let clients: [MountClient]
    let users: [TestUser]
    let projects = ["project-a", "project-a", "project-b"]
    /// Free names per project, and one image per project whose id is also a name its data can be staged under.
    let freeNames = ["project-a": ["a0", "a1", "a2"], "project-b": ["b0", "b1"]]
    var images: [String: String] = [:]
    var steps = 0, imports = 0, restarts = 0, crashes = 0
    var history: [String] = []
    var mismatches: [String] = []

    init(mount: StagingMount, seed: UInt64) throws {
        self.mount = mount
        random = SplitMix(state: seed)
        users = [try TestUser.alice, try TestUser.carol, try TestUser.bob]
        clients = try users.map { try MountClient(as: $0) }
        for (index, project) in [(0, "project-a"), (2, "project-b")] { images[project] = try createImage(mount, as: users[index], name: "model") }
    }

    func closeClients() { for client in clients { client.close() } }

    func names(of project: String) -> [String] { freeNames[project]! + [images[project]!] }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

    mutating func note(_ line: String) { history.append("\(steps): " + line) }
    mutating func mismatch(_ line: String) { mismatches.append("step \(steps): " + line) }

    /// Checks an outcome the model predicts: `nil` means success.
    mutating func expect(_ reply: ClientReply, _ errno: String?, _ what: String) {
        note("\(what) -> \(reply)")
        if reply.errno != errno { mismatch("\(what): got \(reply), the model expects \(errno ?? "success")") }
    }

    mutating func step() throws {
        steps += 1
        let client = Int.random(in: 0..<clients.count, using: &random)
        let project = projects[client]
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<22: try open(client, project)
        case 22..<48: try write(client)
        case 48..<53: try truncateHandle(client)
        case 53..<58: try read(client)
        case 58..<63: try flush(client)
        case 63..<78: try close(client)
        case 78..<83: try rename(client, project)
        case 83..<87: try remove(client, project)
        case 87..<89: try truncateName(client, project)
        case 89..<91: try crossProject(client, project)
        case 91..<97: try importImage(client, project)
        case 97..<99: try restart()
        default: try crash()
        }
    }

    mutating func open(_ client: Int, _ project: String) throws {
        let name = pick(names(of: project))
        let access = pick(["r", "w", "rw"])
        var flags: [String] = []
        if chance(50) { flags.append("creat") }
        if flags.contains("creat"), chance(30) { flags.append("excl") }
        if access != "r", chance(25) { flags.append("trunc") }
        let reply = try clients[client].open(mount.path(name), access, flags: flags)
        let exists = model.file(named: name) != nil
        let expected: String? = exists ? (flags.contains("excl") ? "EEXIST" : nil) : (flags.contains("creat") ? nil : "ENOENT")
        expect(reply, expected, "\(users[client]) open \(name) \(access) \(flags)")
        guard case let .value(descriptor) = reply else { return }
        model.opened(
            name, project: project, handle: (client, descriptor), read: access != "w", write: access != "r",
            created: !exists, truncated: flags.contains("trunc"))
    }

    mutating func handle(of client: Int) -> StagingModel.Handle? {
        let own = model.handles.filter { $0.client == client }
        return own.isEmpty ? nil : pick(own)
    }

    mutating func write(_ client: Int) throws {
        guard let handle = handle(of: client), let file = model.files[handle.file] else { return }
        let size = file.content.count
        let offset = chance(60) ? size : chance(70) ? Int.random(in: 0...size, using: &random) : size + Int.random(in: 1...8192, using: &random)
        let data = Data((0..<Int.random(in: 1...48_000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
        let reply = try clients[client].pwrite(handle.descriptor, data, at: offset)
        expect(reply, !handle.writable ? "EBADF" : file.detached ? "EBUSY" : nil, "\(users[client]) pwrite fd \(handle.descriptor) \(data.count) at \(offset)")
        if reply.succeeded { model.wrote(handle, data, at: offset) }
    }

    mutating func truncateHandle(_ client: Int) throws {
        guard let handle = handle(of: client), let file = model.files[handle.file] else { return }
        let size = Int.random(in: 0...(file.content.count + 8192), using: &random)
        let reply = try clients[client].ftruncate(handle.descriptor, to: size)
        expect(reply, !handle.writable ? "EINVAL" : file.detached ? "EBUSY" : nil, "\(users[client]) ftruncate fd \(handle.descriptor) to \(size)")
        if reply.succeeded { model.truncated(handle.file, to: size) }
    }

    mutating func read(_ client: Int) throws {
        guard let handle = handle(of: client), let file = model.files[handle.file] else { return }
        let offset = Int.random(in: 0...max(0, file.content.count), using: &random)
        let reply = try clients[client].pread(handle.descriptor, count: 65536, at: offset)
        let what = "\(users[client]) pread fd \(handle.descriptor) at \(offset)"
        expect(reply, !handle.readable ? "EBADF" : file.detached ? "ESTALE" : nil, what)
        if case let .data(data) = reply, data != file.content[offset..<min(file.content.count, offset + 65536)] {
            mismatch("\(what): \(data.count) bytes that are not the model's")
        }
    }

    mutating func flush(_ client: Int) throws {
        guard let handle = handle(of: client) else { return }
        expect(try clients[client].closeDuplicate(handle.descriptor), nil, "\(users[client]) close(dup(fd \(handle.descriptor)))")
        model.flushed(handle)
        try settle()
    }

    mutating func close(_ client: Int) throws {
        guard let handle = handle(of: client) else { return }
        expect(try clients[client].close(handle.descriptor), nil, "\(users[client]) close fd \(handle.descriptor)")
        model.closed(handle)
        try settle()
    }

    mutating func rename(_ client: Int, _ project: String) throws {
        let source = pick(freeNames[project]!), target = pick(freeNames[project]!)
        let reply = try clients[client].rename(mount.path(source), to: mount.path(target))
        expect(reply, model.file(named: source) == nil ? "ENOENT" : nil, "\(users[client]) rename \(source) \(target)")
        if reply.succeeded { model.renamed(source, to: target) }
    }

    mutating func remove(_ client: Int, _ project: String) throws {
        let name = pick(names(of: project))
        let reply = try clients[client].unlink(mount.path(name))
        expect(reply, model.file(named: name) == nil ? "ENOENT" : nil, "\(users[client]) unlink \(name)")
        if reply.succeeded { model.removed(name) }
    }

    mutating func truncateName(_ client: Int, _ project: String) throws {
        let name = pick(names(of: project))
        let size = Int.random(in: 0...((model.file(named: name)?.content.count ?? 0) + 4096), using: &random)
        let reply = try clients[client].truncate(mount.path(name), to: size)
        expect(reply, model.file(named: name) == nil ? "ENOENT" : nil, "\(users[client]) truncate \(name) to \(size)")
        if reply.succeeded { model.truncated(name, to: size) }
        try settle()
    }

    /// Another project's names are absent to this caller, whatever it tries, and nothing of them changes.
    mutating func crossProject(_ client: Int, _ project: String) throws {
        let other = project == "project-a" ? "project-b" : "project-a"
        let name = pick(names(of: other))
        let path = mount.path(name)
        let tries: [(String, () throws -> ClientReply)] = [
            ("open r", { [clients] in try clients[client].open(path, "r") }),
            ("open w", { [clients] in try clients[client].open(path, "w") }),
            ("unlink", { [clients] in try clients[client].unlink(path) }),
            ("truncate", { [clients] in try clients[client].truncate(path, to: 0) }),
            ("rename away", { [clients, mount] in try clients[client].rename(path, to: mount.path(name + ".mine")) }),
            ("getxattr", { [clients] in try clients[client].xattr(path, "user.staging.state") }),
        ]
        let (what, attempt) = pick(tries)
        expect(try attempt(), "ENOENT", "\(users[client]) \(what) \(name) of \(other)")
    }

    /// `importctl import --wait`: accepted only for sealed data (empty too, as Glance); the image then holds exactly the model's bytes.
    mutating func importImage(_ client: Int, _ project: String) throws {
        let id = images[project]!
        let file = model.file(named: id)
        let importable = file?.state == .staged
        let result = try mount.importctl(["import", id, "--wait", "--json"], as: users[client])
        note("\(users[client]) import \(id) -> exit \(result.status)")
        guard importable else {
            if result.succeeded {
                mismatch("import of \(id) succeeded, but the model says \(file.map { "\($0.state), \($0.content.count) bytes" } ?? "no data")")
            }
            let status = try imageStatus(mount, id, as: users[client])
            if status != "queued" { mismatch("after a refused import \(id) is \(status), not queued") }
            return
        }
        guard result.succeeded, let file else { return mismatch("import of \(id) failed: \(result)") }
        imports += 1
        let image = try mount.importctlJSON(["image-show", id], as: users[client])
        let hash = referenceDigest("sha512sum", of: file.content)
        if image["status"] as? String != "active" || image["os_hash_value"] as? String != hash || image["size"] as? Int != file.content.count {
            mismatch("imported \(id): \(image), the model's bytes hash to \(hash)")
        }
        let stored = try digest("sha512sum", of: mount.store + "/" + id)
        if stored != hash { mismatch("the store's copy of \(id) hashes to \(stored), its record to \(hash)") }
        model.imported(id)
        images[project] = try createImage(mount, as: users[client], name: "model")
    }

    /// A clean restart: every client closes its descriptors first (a busy mount cannot be unmounted).
    mutating func restart() throws {
        for handle in model.handles {
            _ = try clients[handle.client].close(handle.descriptor)
            model.closed(handle)
        }
        try settle()
        note("restart")
        if mount.stop() != 0 { mismatch("the daemon did not stop cleanly:\n\(mount.log.suffix(2000))") }
        try mount.start()
        model.restarted()
        restarts += 1
    }

    /// kill -9 with descriptors open, then a start over the dead mount.
    mutating func crash() throws {
        note("kill -9 with \(model.handles.count) descriptors open")
        mount.crash()
        for handle in model.handles { _ = try clients[handle.client].close(handle.descriptor) }
        try mount.start()
        model.crashed()
        crashes += 1
    }

    /// Waits until the daemon holds exactly the descriptors the clients hold (the kernel releases files
    /// asynchronously after close): then every seal a close causes has happened.
    func settle() throws {
        let deadline = Date().addingTimeInterval(10)
        while mount.leakedDescriptors != model.handles.count, Date() < deadline { usleep(2_000) }
        guard mount.leakedDescriptors == model.handles.count else {
            throw TestSetupError("the daemon holds \(mount.leakedDescriptors) descriptors, the clients \(model.handles.count)")
        }
    }
}

extension ModelRun {
    /// After every step: each project's names, seen by one of its members, are what the model says (size, bytes,
    /// state, hashes); the other project sees none of them.
    mutating func check() throws {
        try settle()
        for project in ["project-a", "project-b"] {
            let members = projects.indices.filter { projects[$0] == project }
            let member = pick(members)
            let outsider = projects.indices.first { projects[$0] != project }!
            for name in names(of: project) {
                let path = mount.path(name)
                let size = try clients[member].size(path)
                if case let .failed(errno) = try clients[outsider].size(path), errno == "ENOENT" {
                } else {
                    mismatch("\(users[outsider]) can see \(name) of \(project)")
                }
                guard let file = model.file(named: name) else {
                    if size.errno != "ENOENT" { mismatch("\(name) should not exist; stat says \(size)") }
                    continue
                }
                guard case let .value(length) = size else { mismatch("stat \(name): \(size)"); continue }
                if length != file.content.count { mismatch("\(name) is \(length) bytes, the model's \(file.content.count)") }
                let state = try clients[member].xattr(path, "user.staging.state")
                if state != .text(file.state.rawValue) { mismatch("\(name) says \(state), the model \(file.state.rawValue)") }
                if file.state == .staged {
                    let hash = try clients[member].xattr(path, "user.staging.os_hash_value")
                    let expected = referenceDigest("sha512sum", of: file.content)
                    if hash != .text(expected) { mismatch("\(name) is staged with os_hash_value \(hash), its bytes hash to \(expected)") }
                }
                if chance(30), try clients[member].readFile(path) != .data(file.content) { mismatch("\(name) does not hold the model's bytes") }
            }
        }
        try settle()
    }
}
