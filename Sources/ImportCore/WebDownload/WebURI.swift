// The parts of an absolute http(s)-style URI that web-download filters on and fetches, parsed as urllib does.
import Foundation

/// `scheme://host[:port]/path?query`, with the host lower-cased and the fragment dropped (it never goes on the wire).
public struct WebURI: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    /// Without brackets for IPv6, as urllib's `hostname`; empty when the URI has none.
    public var host: String
    /// Only when the URI spells one: Glance's port filter looks at explicit ports only.
    public var port: Int?
    /// The request target: path and query, at least "/".
    public var target: String

    public init(parsing text: String) throws(DownloadError) {
        func malformed(_ reason: String) -> DownloadError { .malformedURI(uri: text, reason: reason) }
        guard let colon = text.firstIndex(of: ":"), colon > text.startIndex,
            text[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }),
            text.first?.isLetter == true
        else {
            throw malformed("it has no scheme; write an absolute URI such as http://host/path")
        }
        scheme = text[..<colon].lowercased()
        let rest = text[text.index(after: colon)...]
        guard rest.hasPrefix("//") else { throw malformed("it has no //host part") }
        var remainder = rest.dropFirst(2)
        if let hash = remainder.firstIndex(of: "#") { remainder = remainder[..<hash] }
        let authorityEnd = remainder.firstIndex { $0 == "/" || $0 == "?" } ?? remainder.endIndex
        var authority = remainder[..<authorityEnd]
        let path = remainder[authorityEnd...]
        target = path.hasPrefix("/") ? String(path) : "/" + path
        guard !target.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false }) else {
            throw malformed("the path contains white space or control characters; percent-encode them")
        }
        // Credentials in a URI would be sent nowhere here, and "allowed@evil" is a classic filter-evasion trick.
        guard !authority.contains("@") else { throw malformed("it carries user credentials, which web-download does not send") }
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw malformed("the IPv6 address has no closing ]") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            authority = authority[authority.index(after: close)...]
            guard authority.isEmpty || authority.hasPrefix(":") else { throw malformed("unexpected text after the IPv6 address") }
        } else {
            let portColon = authority.firstIndex(of: ":") ?? authority.endIndex
            host = String(authority[..<portColon])
            authority = authority[portColon...]
        }
        // An empty host ("file:///path") parses, as in urllib, so that the filter refuses the scheme first.
        host = host.lowercased()
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:".contains($0)) }) else {
            throw malformed("the host '\(host)' contains characters a host name cannot have")
        }
        if authority.hasPrefix(":") {
            let digits = authority.dropFirst()
            if digits.isEmpty {
                port = nil
            } else {
                guard digits.allSatisfy(\.isASCII), let number = Int(digits), (1...65535).contains(number) else {
                    throw malformed("the port '\(digits)' is not a number from 1 to 65535")
                }
                port = number
            }
        } else {
            port = nil
        }
    }

    /// The port to connect to: the explicit one, or the scheme's default.
    public var effectivePort: Int { port ?? (scheme == "https" ? 443 : 80) }

    /// The Host header's value: brackets around IPv6, the port only when it was spelled.
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port.map { "\(name):\($0)" } ?? name
    }

    public var description: String { "\(scheme)://\(authority)\(target)" }

    /// Whether the host is an IP address rather than a name (TLS sends no server name for an address).
    public var hostIsAddress: Bool { ImportFilteringOptions.addressBytes(host) != nil }

    /// Resolves a Location header against this URI (RFC 3986 §5.2, without dot-segment removal: servers see
    /// what they sent).
    public func resolving(_ reference: String) throws(DownloadError) -> WebURI {
        if let colon = reference.firstIndex(of: ":"),
            reference[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }),
            reference.first?.isLetter == true
        {
            return try WebURI(parsing: reference)
        }
        if reference.hasPrefix("//") { return try WebURI(parsing: "\(scheme):\(reference)") }
        let withoutFragment = reference.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        var resolved = self
        if withoutFragment.isEmpty { return resolved }
        if withoutFragment.hasPrefix("/") {
            resolved.target = withoutFragment
        } else if withoutFragment.hasPrefix("?") {
            resolved.target = String(target.prefix { $0 != "?" }) + withoutFragment
        } else {
            let basePath = target.prefix { $0 != "?" }
            let directory = basePath[...(basePath.lastIndex(of: "/") ?? basePath.startIndex)]
            resolved.target = directory + withoutFragment
        }
        return try WebURI(parsing: resolved.description)
    }
}
