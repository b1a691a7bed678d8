// Where an HTTPConnection's bytes travel: a plain socket here; a TLS session over one elsewhere (WebDownload).
import Foundation
import SystemPackage

/// A connected byte stream over a socket.
public protocol ByteStream: AnyObject {
    /// The socket underneath: for the peer's credentials, and closed by `close()`.
    var descriptor: FileDescriptor { get }
    /// Reads up to `buffer.count` bytes, 0 at end of stream; with a timeout, waits at most that many seconds for a byte.
    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Double?) throws(HTTPError) -> Int
    func write(_ bytes: UnsafeRawBufferPointer) throws(HTTPError)
    func close()
}

/// A socket read and written as it is.
public final class SocketStream: ByteStream {
    public let descriptor: FileDescriptor

    public init(_ descriptor: FileDescriptor) {
        self.descriptor = descriptor
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Double?) throws(HTTPError) -> Int {
        if let timeout { try waitReadable(timeout) }
        do { return try descriptor.read(into: buffer) } catch let error as Errno { throw .io(error) } catch { throw .io(.ioError) }
    }

    /// MSG_NOSIGNAL: a peer that hung up is an error to report, not a SIGPIPE that ends the process.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(HTTPError) {
        var offset = 0
        while offset < bytes.count {
            let sent = send(descriptor.rawValue, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                if errno == EINTR { continue }
                throw .io(Errno(rawValue: errno))
            }
            offset += sent
        }
    }

    public func close() { try? descriptor.close() }

    private func waitReadable(_ seconds: Double) throws(HTTPError) {
        var request = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&request, 1, Int32(min(seconds * 1000, Double(Int32.max)).rounded(.up)))
            if ready > 0 { return }
            if ready == 0 { throw .timedOut(seconds: seconds) }
            if errno != EINTR { throw .io(Errno(rawValue: errno)) }
        }
    }
}
