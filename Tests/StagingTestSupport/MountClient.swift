// A process of a test user that holds descriptors across steps: tests drive it one system call at a time
// (open, pwrite, ftruncate, close…) and see each call's errno, as a long-running writer would.
import Foundation

/// One system call's outcome: its result, or the errno's name (`EBUSY`, `ESTALE`…).
public enum ClientReply: Equatable, Sendable, CustomStringConvertible {
    case value(Int)
    case data(Data)
    case text(String)
    case failed(errno: String)

    public var errno: String? { if case let .failed(errno) = self { errno } else { nil } }
    public var succeeded: Bool { errno == nil }
    public var description: String {
        switch self {
        case let .value(value): "\(value)"
        case let .data(data): "\(data.count) bytes"
        case let .text(text): text
        case let .failed(errno): errno
        }
    }
}

public final class MountClient: @unchecked Sendable {
    public let user: TestUser
    private let process = Process()
    private let requests = Pipe()
    private let replies = Pipe()
    private var buffered = Data()

    /// Reads one JSON request a line and answers one JSON line: {"ok": …} or {"errno": "EBUSY"}.
    private static let program = #"""
        import errno, json, os, sys
        fds = {}
        for line in sys.stdin:
            r = json.loads(line)
            op = r["op"]
            try:
                if op == "open":
                    flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[r["access"]]
                    for f in r.get("flags", []):
                        flags |= {"creat": os.O_CREAT, "excl": os.O_EXCL, "trunc": os.O_TRUNC}[f]
                    fd = os.open(r["path"], flags, 0o644)
                    fds[fd] = True
                    out = fd
                elif op == "pwrite":
                    out = os.pwrite(r["fd"], bytes.fromhex(r["data"]), r["offset"])
                elif op == "pread":
                    out = os.pread(r["fd"], r["count"], r["offset"]).hex()
                elif op == "ftruncate":
                    os.ftruncate(r["fd"], r["size"]); out = 0
                elif op == "fsync":
                    os.fsync(r["fd"]); out = 0
                elif op == "dupclose":
                    os.close(os.dup(r["fd"])); out = 0
                elif op == "close":
                    fds.pop(r["fd"], None); os.close(r["fd"]); out = 0
                elif op == "rename":
                    os.rename(r["from"], r["to"]); out = 0
                elif op == "unlink":
                    os.unlink(r["path"]); out = 0
                elif op == "truncate":
                    os.truncate(r["path"], r["size"]); out = 0
                elif op == "size":
                    out = os.stat(r["path"]).st_size
                elif op == "fstatowner":
                    out = os.fstat(r["fd"]).st_uid
                elif op == "getxattr":
                    out = os.getxattr(r["path"], r["name"]).decode()
                elif op == "readfile":
                    with open(r["path"], "rb") as f:
                        out = f.read().hex()
                print(json.dumps({"ok": out}), flush=True)
            except OSError as e:
                print(json.dumps({"errno": errno.errorcode.get(e.errno, str(e.errno))}), flush=True)
        """#

    /// Starts the client as `user` (setpriv, with the user's groups).
    public init(as user: TestUser) throws {
        self.user = user
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", "/usr/bin/python3", "-u", "-c", Self.program]
        process.standardInput = requests
        process.standardOutput = replies
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit { close() }

    /// Ends the process; its descriptors close with it.
    public func close() {
        guard process.isRunning else { return }
        try? requests.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private func call(_ request: [String: Any]) throws -> Any {
        let line = try JSONSerialization.data(withJSONObject: request) + Data("\n".utf8)
        try requests.fileHandleForWriting.write(contentsOf: line)
        while !buffered.contains(UInt8(ascii: "\n")) {
            // availableData returns what has arrived; read(upToCount:) would wait for the whole count.
            let chunk = replies.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw TestSetupError("the test client of \(user) ended (exit \(process.terminationStatus)) during \(request["op"] ?? "?")")
            }
            buffered += chunk
        }
        let end = buffered.firstIndex(of: UInt8(ascii: "\n"))!
        let reply = buffered[buffered.startIndex..<end]
        buffered = Data(buffered[(end + 1)...])
        guard let object = try JSONSerialization.jsonObject(with: reply) as? [String: Any] else {
            throw TestSetupError("the test client of \(user) answered \(String(decoding: reply, as: UTF8.self))")
        }
        if let errno = object["errno"] as? String { return ClientReply.failed(errno: errno) }
        return object["ok"] ?? NSNull()
    }

    private func value(_ request: [String: Any]) throws -> ClientReply {
        let answer = try call(request)
        if let reply = answer as? ClientReply { return reply }
        return .value((answer as? Int) ?? 0)
    }

    private func hex(_ request: [String: Any]) throws -> ClientReply {
        let answer = try call(request)
        if let reply = answer as? ClientReply { return reply }
        return .data(Data(hexString: answer as? String ?? ""))
    }

    /// open(2); `access` is "r", "w" or "rw", `flags` any of "creat", "excl", "trunc". The value is the descriptor.
    public func open(_ path: String, _ access: String, flags: [String] = []) throws -> ClientReply {
        try value(["op": "open", "path": path, "access": access, "flags": flags])
    }
    public func pwrite(_ descriptor: Int, _ data: Data, at offset: Int) throws -> ClientReply {
        try value(["op": "pwrite", "fd": descriptor, "data": data.hexString, "offset": offset])
    }
    public func pread(_ descriptor: Int, count: Int, at offset: Int) throws -> ClientReply {
        try hex(["op": "pread", "fd": descriptor, "count": count, "offset": offset])
    }
    public func ftruncate(_ descriptor: Int, to size: Int) throws -> ClientReply { try value(["op": "ftruncate", "fd": descriptor, "size": size]) }
    public func fsync(_ descriptor: Int) throws -> ClientReply { try value(["op": "fsync", "fd": descriptor]) }
    /// close(2) of a duplicate: the file is flushed (dd's seal) while the descriptor stays open.
    public func closeDuplicate(_ descriptor: Int) throws -> ClientReply { try value(["op": "dupclose", "fd": descriptor]) }
    public func close(_ descriptor: Int) throws -> ClientReply { try value(["op": "close", "fd": descriptor]) }
    public func rename(_ source: String, to target: String) throws -> ClientReply { try value(["op": "rename", "from": source, "to": target]) }
    public func unlink(_ path: String) throws -> ClientReply { try value(["op": "unlink", "path": path]) }
    public func truncate(_ path: String, to size: Int) throws -> ClientReply { try value(["op": "truncate", "path": path, "size": size]) }
    public func size(_ path: String) throws -> ClientReply { try value(["op": "size", "path": path]) }
    /// fstat(2)'s st_uid.
    public func owner(_ descriptor: Int) throws -> ClientReply { try value(["op": "fstatowner", "fd": descriptor]) }
    public func readFile(_ path: String) throws -> ClientReply { try hex(["op": "readfile", "path": path]) }
    public func xattr(_ path: String, _ name: String) throws -> ClientReply {
        let answer = try call(["op": "getxattr", "path": path, "name": name])
        if let reply = answer as? ClientReply { return reply }
        return .text(answer as? String ?? "")
    }
}

extension Data {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(count * 2)
        for byte in self { text.append(digits[Int(byte >> 4)]); text.append(digits[Int(byte & 15)]) }
        return String(decoding: text, as: UTF8.self)
    }

    init(hexString: String) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(hexString.utf8.count / 2)
        var high: UInt8?
        for character in hexString.utf8 {
            let nibble = character <= 57 ? character - 48 : character - 87
            if let first = high { bytes.append(first << 4 | nibble); high = nil } else { high = nibble }
        }
        self.init(bytes)
    }
}
