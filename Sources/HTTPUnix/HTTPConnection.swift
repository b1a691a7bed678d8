// HTTP/1.1 over a stream socket: just what the StagingFS API and importctl speak (one request per connection).
import Foundation
import SystemPackage

/// A request line or status line, and the headers.
public struct HTTPHead: Sendable {
    /// Request: method, target, version. Response: version, status code, reason.
    public var startLine: [String]
    public var headers: [(name: String, value: String)]

    public init(startLine: [String], headers: [(name: String, value: String)]) {
        self.startLine = startLine
        self.headers = headers
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public var method: String { startLine.first ?? "" }
    public var target: String { startLine.count > 1 ? startLine[1] : "" }
    public var statusCode: Int { startLine.count > 1 ? Int(startLine[1]) ?? 0 : 0 }
}

public enum HTTPError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    /// The peer closed the connection before the message was whole.
    case truncated(expected: Int64?, received: Int64)
    case tooLarge(limit: Int)
    /// No byte arrived within the connection's read timeout.
    case timedOut(seconds: Double)
    case io(Errno)

    public var description: String {
        switch self {
        case let .malformed(what): return "malformed HTTP message: \(what)"
        case let .truncated(expected, received):
            return "the connection closed after \(received) of \(expected.map(String.init) ?? "the announced") bytes"
        case let .tooLarge(limit): return "message larger than \(limit) bytes"
        case let .timedOut(seconds): return "no data for \(seconds) s"
        case let .io(errno): return "socket error: \(errno)"
        }
    }
}

/// A buffered reader and writer for one connection. Not shared between threads.
public final class HTTPConnection {
    public let stream: any ByteStream
    private var buffer: [UInt8] = []
    private var position = 0
    private var atEnd = false
    /// Seconds each read waits for the peer before `.timedOut`; nil waits for ever (a local peer).
    public var readTimeout: Double?

    public init(stream: any ByteStream, readTimeout: Double? = nil) {
        self.stream = stream
        self.readTimeout = readTimeout
    }

    public convenience init(descriptor: FileDescriptor, readTimeout: Double? = nil) {
        self.init(stream: SocketStream(descriptor), readTimeout: readTimeout)
    }

    public var descriptor: FileDescriptor { stream.descriptor }

    public func close() { stream.close() }

    private var available: Int { buffer.count - position }

    /// Reads more bytes; false at end of stream.
    private func fill(upTo count: Int = 64 * 1024) throws(HTTPError) -> Bool {
        if atEnd { return false }
        if position > 0 {
            buffer.removeFirst(position)
            position = 0
        }
        var chunk = [UInt8](repeating: 0, count: count)
        let received: Int
        // withUnsafeMutableBytes rethrows untyped; only HTTPError can come out of the stream.
        do { received = try chunk.withUnsafeMutableBytes { try stream.read(into: $0, timeout: readTimeout) } } catch {
            throw error as? HTTPError ?? .io(.ioError)
        }
        if received == 0 {
            atEnd = true
            return false
        }
        buffer.append(contentsOf: chunk.prefix(received))
        return true
    }

    private func readLine(limit: Int) throws(HTTPError) -> String? {
        while true {
            if let newline = buffer[position...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > position, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: buffer[position..<end], as: UTF8.self)
                position = newline + 1
                return line
            }
            if available > limit { throw .tooLarge(limit: limit) }
            if try !fill() {
                if available == 0 { return nil }
                throw .truncated(expected: nil, received: Int64(available))
            }
        }
    }

    /// Reads a request or response head; nil when the peer closed the connection before sending anything.
    public func readHead(limit: Int = 64 * 1024) throws(HTTPError) -> HTTPHead? {
        guard let first = try readLine(limit: limit) else { return nil }
        let startLine = first.split(separator: " ", maxSplits: 2).map(String.init)
        guard startLine.count >= 2 else { throw .malformed("start line '\(first.prefix(80))'") }
        var headers: [(name: String, value: String)] = []
        while let line = try readLine(limit: limit), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line '\(line.prefix(80))'") }
            headers.append(
                (
                    String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                    String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                ))
            if headers.count > 100 { throw .tooLarge(limit: limit) }
        }
        return HTTPHead(startLine: startLine, headers: headers)
    }

    /// Streams the body (Content-Length or chunked) to `consume` in pieces of at most `chunkSize` bytes.
    /// Returns the byte count; throws `.truncated` if the peer stops early. A message with neither has an empty
    /// body, unless `untilClose` (a response, RFC 9112 §6.3): then the body is everything until the peer closes.
    @discardableResult
    public func readBody(_ head: HTTPHead, chunkSize: Int = 1 << 20, untilClose: Bool = false, _ consume: (Data) throws -> Void) throws -> Int64 {
        // Two framings, or two lengths, are how one message is read as two by different parsers: refused (RFC 9112 §6.3).
        let lengths = Set(head.headers.filter { $0.name.caseInsensitiveCompare("Content-Length") == .orderedSame }.map(\.value))
        guard lengths.count <= 1 else { throw HTTPError.malformed("Content-Length given twice with different values") }
        if head.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            guard lengths.isEmpty else { throw HTTPError.malformed("both Transfer-Encoding: chunked and Content-Length") }
            var total: Int64 = 0
            while true {
                guard let sizeLine = try readLine(limit: 1024) else { throw HTTPError.truncated(expected: nil, received: total) }
                let sizeText = (sizeLine.split(separator: ";", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(
                    in: CharacterSet(charactersIn: " \t"))
                guard !sizeText.isEmpty, sizeText.allSatisfy(\.isHexDigit), let size = Int64(sizeText, radix: 16) else {
                    throw HTTPError.malformed("chunk size '\(sizeLine)'")
                }
                if size == 0 {
                    while let trailer = try readLine(limit: 8192), !trailer.isEmpty {}
                    return total
                }
                let (sum, overflow) = total.addingReportingOverflow(size)
                guard !overflow else { throw HTTPError.malformed("chunk size '\(sizeLine)': the chunks add up to more than \(Int64.max) bytes") }
                try readExactly(size, chunkSize: chunkSize, alreadyRead: total, consume)
                total = sum
                _ = try readLine(limit: 2)
            }
        }
        guard let lengthText = head.header("Content-Length") else {
            return untilClose ? try readToEnd(chunkSize: chunkSize, consume) : 0
        }
        guard !lengthText.isEmpty, lengthText.allSatisfy(\.isASCII), lengthText.allSatisfy(\.isNumber), let length = Int64(lengthText) else {
            throw HTTPError.malformed("Content-Length '\(lengthText)'")
        }
        try readExactly(length, chunkSize: chunkSize, alreadyRead: 0, consume)
        return length
    }

    private func readExactly(_ count: Int64, chunkSize: Int, alreadyRead: Int64, _ consume: (Data) throws -> Void) throws {
        var remaining = count
        while remaining > 0 {
            if available == 0, try !fill(upTo: min(chunkSize, Int(remaining))) {
                throw HTTPError.truncated(expected: alreadyRead + count, received: alreadyRead + count - remaining)
            }
            let take = min(available, Int(remaining), chunkSize)
            try consume(Data(buffer[position..<position + take]))
            position += take
            remaining -= Int64(take)
        }
    }

    private func readToEnd(chunkSize: Int, _ consume: (Data) throws -> Void) throws -> Int64 {
        var total: Int64 = 0
        while try available > 0 || fill(upTo: chunkSize) {
            let take = min(available, chunkSize)
            try consume(Data(buffer[position..<position + take]))
            position += take
            total += Int64(take)
        }
        return total
    }

    /// The whole body, refusing more than `limit` bytes.
    public func readBody(_ head: HTTPHead, limit: Int) throws -> Data {
        var body = Data()
        try readBody(head) { chunk in
            body.append(chunk)
            if body.count > limit { throw HTTPError.tooLarge(limit: limit) }
        }
        return body
    }

    public func write(_ data: Data) throws(HTTPError) {
        do { try data.withUnsafeBytes { try stream.write($0) } } catch { throw error as? HTTPError ?? .io(.ioError) }
    }

    public func writeHead(_ startLine: String, headers: [(String, String)]) throws(HTTPError) {
        var text = startLine + "\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        try write(Data((text + "\r\n").utf8))
    }

    public static func reason(_ status: Int) -> String {
        [
            200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 300: "Multiple Choices", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
            413: "Request Entity Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error",
            503: "Service Unavailable",
        ][status] ?? "Status"
    }
}
