// Resolves a hop's host ourselves, so that the filter judges every address before any connection is made; the
// client is then pinned to the approved ones and never resolves the name again.
import Foundation
import ImportCore

enum AddressResolver {
    /// The numeric addresses of `uri`'s host that `filter` permits, in getaddrinfo's order.
    static func permittedAddresses(of uri: WebURI, filter: ImportFilteringOptions) throws(DownloadError) -> [String] {
        let resolved = try resolve(uri.host, port: uri.effectivePort)
        let permitted = resolved.filter { filter.permits(address: $0, of: uri.host) }
        guard !permitted.isEmpty else { throw .addressRefused(host: uri.host, addresses: resolved) }
        return permitted
    }

    private static func resolve(_ host: String, port: Int) throws(DownloadError) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else { throw .hostNotResolvable(host: host, reason: String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var next = list
        while let info = next?.pointee {
            next = info.ai_next
            guard let socketAddress = info.ai_addr else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(socketAddress, info.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            // A link-local IPv6 address carries its interface ("fe80::1%eth0"); the filter judges the address.
            let numeric = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            addresses.append(String(numeric.prefix { $0 != "%" }))
        }
        return addresses
    }
}
