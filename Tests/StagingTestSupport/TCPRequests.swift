// HTTP over TCP for tests: curl against a listener on loopback, and a port nothing listens on yet.
import Foundation

/// An HTTP answer as a client sees it: status, headers (names lowercased) and body.
public struct HTTPAnswer: Sendable, CustomStringConvertible {
    public var status: Int
    public var headers: [String: String]
    public var body: String

    public var description: String { "HTTP \(status) \(headers) \(body.prefix(2000))" }

    /// The body as a JSON object (nil when it is not one).
    public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }
}

/// A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it, the test's server binds it next.
public func freeTCPPort() throws -> Int {
    let result = try python(
        """
        import socket
        s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
        """)
    guard let port = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw TestSetupError("no free TCP port: \(result)")
    }
    return port
}

/// One request with curl. `json` is sent as the body with `contentType`; `file` is uploaded as the body
/// (`--data-binary @file`); `output` receives the body instead of `HTTPAnswer.body`; `headers` are extra `Name: value`
/// lines; `extra` are more curl options (TLS ones).
public func curl(
    _ method: String, _ url: String, headers: [String] = [], json: String? = nil,
    contentType: String = "application/json", file: String? = nil, output: String? = nil, extra: [String] = []
) throws -> HTTPAnswer {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curl-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var arguments = ["curl", "-sS", "-X", method, "-D", directory + "/headers", "-o", output ?? directory + "/body", "-w", "%{http_code}"]
    for header in headers { arguments += ["-H", header] }
    if let json { arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", json] }
    if let file { arguments += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@" + file] }
    let result = try run(arguments + extra + [url])
    guard result.succeeded, let status = Int(result.stdout) else { throw TestSetupError("curl \(method) \(url) failed: \(result)") }
    let rawHeaders = (try? String(contentsOfFile: directory + "/headers", encoding: .utf8)) ?? ""
    var parsed: [String: String] = [:]
    // With a 100 Continue first, the last header block is the answer's.
    for line in rawHeaders.split(separator: "\r\n") {
        guard let colon = line.firstIndex(of: ":") else { parsed = [:]; continue }
        parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    let body = (try? String(contentsOfFile: directory + "/body", encoding: .utf8)) ?? ""
    return HTTPAnswer(status: status, headers: parsed, body: body)
}
