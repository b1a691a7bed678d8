// What the staging area must say about each file after any sequence of calls: the model the model-based test
// checks the real mount against. It holds the rules of docs/architecture.md ("What a record guarantees"), not
// the daemon's code: a file is `staged` with the hash of its bytes exactly when no write generation runs.
import Foundation
import StagingTestSupport

struct StagingModel {
    enum State: String { case writing, staged, incomplete }

    struct File {
        let project: String
        var content = Data()
        var state = State.writing
        /// Bumped whenever the content changes, so digests are computed once per version.
        var version = 0
        /// Gone from the namespace (unlinked, replaced, imported): handles on it still work (or are detached).
        var gone = false
        /// Went into the image store: reads through old handles get ESTALE, writes EBUSY.
        var detached = false
    }

    struct Handle {
        let client: Int
        let descriptor: Int
        let file: Int
        let readable: Bool
        let writable: Bool
        /// Counts as a writer of the file: opened for writing, or the handle that created it (whatever its access
        /// mode, the creator's close seals the new file).
        let writer: Bool
    }

    private(set) var files: [Int: File] = [:]
    private(set) var names: [String: Int] = [:]
    private(set) var handles: [Handle] = []
    private var nextFile = 0

    func file(named name: String) -> File? { names[name].flatMap { files[$0] } }
    func writers(of file: Int) -> Int { handles.filter { $0.file == file && $0.writer }.count }

    /// open(2) that succeeded: with `created` a new empty file (its record says `writing` until the first close);
    /// for writing, a write generation begins.
    mutating func opened(
        _ name: String, project: String, handle: (client: Int, descriptor: Int), read: Bool, write: Bool,
        created: Bool, truncated: Bool
    ) {
        if created {
            files[nextFile] = File(project: project)
            names[name] = nextFile
            nextFile += 1
        }
        let id = names[name]!
        handles.append(
            Handle(
                client: handle.client, descriptor: handle.descriptor, file: id, readable: read, writable: write,
                writer: write || created))
        if write { beginGeneration(id) }
        if truncated { change(id) { $0.content = Data() } }
    }

    mutating func wrote(_ handle: Handle, _ data: Data, at offset: Int) {
        change(handle.file) { file in
            if file.content.count < offset { file.content.append(Data(count: offset - file.content.count)) }
            let end = offset + data.count
            if file.content.count < end { file.content.append(Data(count: end - file.content.count)) }
            file.content.replaceSubrange(offset..<end, with: data)
        }
    }

    mutating func truncated(_ file: Int, to size: Int) {
        change(file) { file in
            if file.content.count > size { file.content.removeSubrange(size...) } else { file.content.append(Data(count: size - file.content.count)) }
        }
    }

    /// close(2) of a duplicate: the file is flushed, which seals it when this handle is its only writer (dd's way).
    mutating func flushed(_ handle: Handle) {
        if handle.writer, writers(of: handle.file) == 1 { seal(handle.file) }
    }

    /// close(2): when the last writer leaves, the file is sealed.
    mutating func closed(_ handle: Handle) {
        handles.removeAll { $0.client == handle.client && $0.descriptor == handle.descriptor }
        if handle.writer, writers(of: handle.file) == 0 { seal(handle.file) }
    }

    /// truncate(2) by name: a write generation of its own, sealed at once unless another writer is open.
    mutating func truncated(_ name: String, to size: Int) {
        let id = names[name]!
        beginGeneration(id)
        truncated(id, to: size)
        if writers(of: id) == 0 { seal(id) }
    }

    mutating func renamed(_ source: String, to target: String) {
        guard source != target else { return }
        if let replaced = names[target] { files[replaced]?.gone = true }
        names[target] = names.removeValue(forKey: source)
    }

    mutating func removed(_ name: String) {
        if let id = names.removeValue(forKey: name) { files[id]?.gone = true }
    }

    /// The import took the file into the store: its name is free again, its handles are detached.
    mutating func imported(_ name: String) {
        guard let id = names.removeValue(forKey: name) else { return }
        files[id]?.gone = true
        files[id]?.detached = true
    }

    /// kill -9 and a restart: every descriptor is gone; a file whose write generation was running is incomplete.
    mutating func crashed() {
        handles.removeAll()
        for (id, file) in files where file.state == .writing { files[id]?.state = .incomplete }
        forgetGone()
    }

    /// A clean stop (every handle closed first) and a start.
    mutating func restarted() { forgetGone() }

    private mutating func forgetGone() {
        for (id, file) in files where file.gone && !handles.contains(where: { $0.file == id }) { files[id] = nil }
    }

    private mutating func beginGeneration(_ id: Int) {
        guard files[id]?.gone == false else { return }
        files[id]?.state = .writing
    }

    private mutating func seal(_ id: Int) {
        guard files[id]?.gone == false, files[id]?.state == .writing else { return }
        files[id]?.state = .staged
    }

    private mutating func change(_ id: Int, _ body: (inout File) -> Void) {
        guard var file = files[id] else { return }
        body(&file)
        file.version += 1
        if !file.gone { file.state = .writing }
        files[id] = file
    }
}
