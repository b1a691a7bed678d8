// Opens the TCP connection of a download: resolve, keep the addresses the filter permits, connect with a timeout.
import CLinux
import Foundation
import ImportCore
import SystemPackage

/// One address getaddrinfo returned: numeric text for the filter and errors, the socket address for connect.
struct ResolvedAddress {
    var text: String
    var socketAddress: [UInt8]
}

enum TCPConnector {
    /// A connected, blocking socket to `uri`'s host and port, trying each permitted address in turn.
    static func connect(to uri: WebURI, filter: ImportFilteringOptions, timeout: Double) throws(DownloadError) -> FileDescriptor {
        let port = uri.effectivePort
        let resolved = try resolve(uri.host, port: port)
        let permitted = resolved.filter { filter.permits(address: $0.text, of: uri.host) }
        guard !permitted.isEmpty else { throw .addressRefused(host: uri.host, addresses: resolved.map(\.text)) }
        var failure = DownloadError.connectionRefused(host: uri.host, port: port)
        let milliseconds = Int32(min(timeout * 1000, Double(Int32.max)).rounded(.up))
        for address in permitted {
            let fd = address.socketAddress.withUnsafeBytes { bytes in
                clinux_tcp_connect(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(bytes.count), milliseconds)
            }
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            switch Errno(rawValue: -fd) {
            case .connectionRefused: failure = .connectionRefused(host: uri.host, port: port)
            case .timedOut: failure = .connectTimeout(host: uri.host, port: port, seconds: timeout)
            case let errno: failure = .connectionFailed(host: uri.host, port: port, reason: "\(address.text): \(errno)")
            }
        }
        throw failure
    }

    private static func resolve(_ host: String, port: Int) throws(DownloadError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else { throw .hostNotResolvable(host: host, reason: String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(list) }
        var addresses: [ResolvedAddress] = []
        var next = list
        while let info = next?.pointee {
            next = info.ai_next
            guard let socketAddress = info.ai_addr else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(socketAddress, info.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            // A link-local IPv6 address carries its interface ("fe80::1%eth0"); the filter judges the address.
            let numeric = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let bytes = Array(UnsafeRawBufferPointer(start: socketAddress, count: Int(info.ai_addrlen)))
            addresses.append(ResolvedAddress(text: String(numeric.prefix { $0 != "%" }), socketAddress: bytes))
        }
        return addresses
    }
}
