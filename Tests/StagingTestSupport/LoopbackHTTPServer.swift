// A real HTTP/1.1 server on loopback (python3's http.server), with one path per behaviour the tests need.
import Foundation

/// The server runs as a child process; `stop()` ends it, and it also exits by itself when our end of its stdin
/// closes, so a crashed test run leaves nothing behind.
public final class LoopbackHTTPServer {
    public let port: Int
    /// A port whose accept queue is full, so that connecting to it hangs until the client gives up.
    public let unansweredPort: Int
    /// The host part of this server's URLs.
    let host: String
    let scheme: String
    private let process: Process
    private let stdin: Pipe

    /// Serves `file` at /file, /chunked and /close, listening on `address` (IPv4 or IPv6 loopback); https with
    /// `tls`'s certificate and key (PEM files) when given.
    public init(serving file: String, address: String = "127.0.0.1", tls: (certificate: String, key: String)? = nil) throws {
        host = address.contains(":") ? "[\(address)]" : address
        scheme = tls == nil ? "http" : "https"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.program, file, address] + (tls.map { [$0.certificate, $0.key] } ?? [])
        stdin = Pipe()
        let stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // The first line holds the ports it bound; EOF before it means python failed, and stderr says why.
        var output = Data()
        while !output.contains(UInt8(ascii: "\n")) {
            let more = stdout.fileHandleForReading.availableData
            if more.isEmpty {
                process.waitUntilExit()
                let error = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw TestSetupError("the test HTTP server did not start: \(error)")
            }
            output.append(more)
        }
        let ports = String(decoding: output, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard ports.count == 2 else {
            throw TestSetupError("the test HTTP server printed '\(String(decoding: output, as: UTF8.self))' instead of its ports")
        }
        (port, unansweredPort) = (ports[0], ports[1])
    }

    public func url(_ path: String, host: String? = nil) -> String { "\(scheme)://\(host ?? self.host):\(port)\(path)" }

    public func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    private static let program = #"""
        import http.server, os, shutil, socket, ssl, sys, threading, time, urllib.parse

        data, address = sys.argv[1], sys.argv[2]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def head(self, status, headers):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()

            def do_GET(self):
                path, _, query = self.path.partition("?")
                parts = path.strip("/").split("/")
                name = parts[0]
                self.close_connection = True
                try:
                    getattr(self, "route_" + name)(parts[1:], urllib.parse.unquote(query))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def route_file(self, args, query):
                self.head(200, [("Content-Length", str(os.path.getsize(data)))])
                with open(data, "rb") as source:
                    shutil.copyfileobj(source, self.wfile)

            def route_chunked(self, args, query):
                self.head(200, [("Transfer-Encoding", "chunked")])
                size = 1
                with open(data, "rb") as source:
                    while block := source.read(size):
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(block), block))
                        size = size * 3 + 7 if size < 300000 else 1
                self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")

            def route_close(self, args, query):
                self.head(200, [("Connection", "close")])
                with open(data, "rb") as source:
                    shutil.copyfileobj(source, self.wfile)

            def route_hop(self, args, query):
                n = int(args[0])
                if n == 0:
                    self.head(200, [("Content-Length", "7")])
                    self.wfile.write(b"arrived")
                elif n % 2:
                    self.head(302, [("Location", str(n - 1)), ("Content-Length", "0")])
                else:
                    scheme = "https" if len(sys.argv) > 3 else "http"
                    self.head(301, [("Location", "%s://%s/hop/%d" % (scheme, self.headers["Host"], n - 1)), ("Content-Length", "0")])

            def route_to(self, args, query):
                self.head(307, [("Location", query), ("Content-Length", "0")])

            def route_nolocation(self, args, query):
                self.head(302, [("Content-Length", "0")])

            def route_status(self, args, query):
                self.head(int(args[0]), [("Content-Length", "0")])

            def route_stall(self, args, query):
                self.head(200, [("Content-Length", "100")])
                self.wfile.flush()
                time.sleep(60)

            def route_drip(self, args, query):
                self.head(200, [("Content-Length", "1000")])
                for _ in range(1000):
                    self.wfile.write(b"d")
                    self.wfile.flush()
                    time.sleep(0.5)

            def route_truncated(self, args, query):
                self.head(200, [("Content-Length", "1000")])
                self.wfile.write(b"0123456789")

            def route_announced(self, args, query):
                self.head(200, [("Content-Length", args[0])])
                self.wfile.write(b"x" * 1000)

            def route_endless(self, args, query):
                self.head(200, [("Transfer-Encoding", "chunked")])
                block = b"y" * 65536
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        server = Server((address, 0), Handler)
        server.daemon_threads = True
        if len(sys.argv) > 3:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[3], sys.argv[4])
            server.socket = context.wrap_socket(server.socket, server_side=True)

        # Linux drops SYNs once a listener's accept queue is full: one held connection fills a backlog of 0.
        unanswered = socket.socket(Server.address_family)
        unanswered.bind((address, 0))
        unanswered.listen(0)
        filler = socket.create_connection((address, unanswered.getsockname()[1]))

        print(server.server_address[1], unanswered.getsockname()[1], flush=True)

        def exit_with_parent():
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=exit_with_parent, daemon=True).start()
        server.serve_forever()
        """#
}
