// Resolves a hop's host ourselves, so that the filter judges every address before any connection is made; the
// client is then pinned to the approved ones and never resolves the name again.
import CLinux
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
        var buffer = [CChar](repeating: 0, count: 1 << 14)
        let count = clinux_resolve(host, Int32(clamping: port), &buffer, buffer.count)
        guard count >= 0 else { throw .hostNotResolvable(host: host, reason: String(cString: gai_strerror(count))) }
        // NUL-separated numeric addresses; a link-local IPv6 one carries its interface ("fe80::1%eth0"), and the
        // filter judges the address.
        let texts = buffer.split(separator: 0, omittingEmptySubsequences: true).prefix(Int(count))
        return texts.map { text in String(String(decoding: text.map { UInt8(bitPattern: $0) }, as: UTF8.self).prefix { $0 != "%" }) }
    }
}
