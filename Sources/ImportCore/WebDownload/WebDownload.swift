// What the web-download import method may fetch (Glance's [import_filtering_opts]), its limits, its failures,
// and the fetcher's contract. No networking here: the client lives in the WebDownload target.
import Foundation

/// Glance's [import_filtering_opts].
///
/// As in Glance (`glance.common.utils.get_validated_address`): a non-empty allow-list makes its deny-list
/// ignored; the scheme is checked first, then the host, then the port, and the port only when the URI spells
/// one. Hosts that are numeric shorthands of IP addresses ("2130706433", "127.1") are refused, as Glance does to
/// block filter evasion.
public struct ImportFilteringOptions: Sendable, Equatable {
    public var allowedSchemes: [String] = ["http", "https"]
    public var disallowedSchemes: [String] = []
    public var allowedHosts: [String] = []
    public var disallowedHosts: [String] = []
    /// `[stagingfs] web_download_refuse_private_addresses` (ours; off, as Glance has no such rule): private
    /// ranges (RFC 1918, 100.64.0.0/10, fc00::/7) are refused as this host's are, unless allowed_hosts names the host.
    public var refusePrivateAddresses = false
    public var allowedPorts: [Int] = [80, 443]
    public var disallowedPorts: [Int] = []

    public init() {}

    /// One option of the section, named as in glance-api.conf.
    public enum Option: String, Sendable, Equatable, CaseIterable {
        case allowedSchemes = "allowed_schemes", disallowedSchemes = "disallowed_schemes"
        case allowedHosts = "allowed_hosts", disallowedHosts = "disallowed_hosts"
        case allowedPorts = "allowed_ports", disallowedPorts = "disallowed_ports"
    }

    /// Throws a refusal that says which rule refused the URI and which option to change.
    public func validate(_ uri: String) throws(DownloadError) {
        _ = try validated(uri)
    }

    /// The parsed URI, once it passes every rule.
    public func validated(_ uri: String) throws(DownloadError) -> WebURI {
        let parsed = try WebURI(parsing: uri)
        func refuse(_ option: Option, _ value: String) -> DownloadError { .refused(uri: uri, option: option, value: value) }

        let schemes = allowedSchemes.map { $0.lowercased() }
        if !schemes.isEmpty, !schemes.contains(parsed.scheme) { throw refuse(.allowedSchemes, parsed.scheme) }
        if schemes.isEmpty, disallowedSchemes.map({ $0.lowercased() }).contains(parsed.scheme) {
            throw refuse(.disallowedSchemes, parsed.scheme)
        }

        guard !parsed.host.isEmpty else { throw .malformedURI(uri: uri, reason: "it has no host") }
        guard let host = Self.normalizedHost(parsed.host) else {
            throw .malformedURI(uri: uri, reason: "the host '\(parsed.host)' is a numeric shorthand of an IP address; write the address in full (a.b.c.d)")
        }
        let allowed = allowedHostSet, denied = Set(disallowedHosts.map(Self.configuredHost))
        if !allowed.isEmpty, !allowed.contains(host) { throw refuse(.allowedHosts, host) }
        if allowed.isEmpty, denied.contains(host) { throw refuse(.disallowedHosts, host) }

        if let port = parsed.port {
            if !allowedPorts.isEmpty, !allowedPorts.contains(port) { throw refuse(.allowedPorts, String(port)) }
            if allowedPorts.isEmpty, disallowedPorts.contains(port) { throw refuse(.disallowedPorts, String(port)) }
        }
        return parsed
    }

    /// Whether a fetch of `host` may connect to `address` (numeric, as getnameinfo writes it), as Glance's
    /// `resolve_pinned_address`: addresses of this host (loopback, and the unspecified 0.0.0.0/8 and `::`, which
    /// connect to it) and link-local ones (cloud metadata services live there) only for a host in allowed_hosts,
    /// and never an address that disallowed_hosts lists.
    public func permits(address: String, of host: String) -> Bool {
        let allowed = allowedHostSet
        if allowed.contains(Self.configuredHost(host)) { return true }
        guard let bytes = Self.addressBytes(address) else { return false }
        if Self.reachesThisHostOrLinkLocal(bytes) || Self.isAddressOfThisHost(bytes) { return false }
        if refusePrivateAddresses, Self.isPrivate(bytes) { return false }
        guard allowed.isEmpty else { return true }
        let denied = disallowedHosts.compactMap(Self.addressBytes)
        return !denied.contains(bytes)
    }

    private var allowedHostSet: Set<String> { Set(allowedHosts.map(Self.configuredHost)) }

    // MARK: Hosts and addresses

    /// An IP address in canonical form, a host name unchanged, or nil for an encoded IPv4 shorthand.
    static func normalizedHost(_ host: String) -> String? {
        if let bytes = addressBytes(host) { return canonical(bytes) }
        if host.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) { return nil }
        return host
    }

    /// Configured hosts compare as URIs' hosts do: case-insensitively, addresses in canonical form.
    private static func configuredHost(_ entry: String) -> String {
        let lowered = entry.trimmingCharacters(in: .whitespaces).lowercased()
        return addressBytes(lowered).map(canonical) ?? lowered
    }

    /// 4 or 16 bytes for an address in standard notation only (dotted quad without leading zeros, or IPv6),
    /// like Python's ipaddress module; nil for anything else.
    static func addressBytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, !text.contains(":") {
            let octets = parts.compactMap { part -> UInt8? in
                guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), part.first != "0" || part.count == 1 else { return nil }
                return UInt8(part)
            }
            return octets.count == 4 ? octets : nil
        }
        guard text.contains(":") else { return nil }
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: address) { Array($0) }
    }

    private static func canonical(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func isPrivate(_ bytes: [UInt8]) -> Bool {
        if let inside = embeddedIPv4(bytes) { return isPrivate(inside) }
        if bytes.count == 4 {
            return bytes[0] == 10 || (bytes[0] == 172 && bytes[1] & 0xf0 == 16) || (bytes[0] == 192 && bytes[1] == 168)
                || (bytes[0] == 100 && bytes[1] & 0xc0 == 64)
        }
        return bytes[0] & 0xfe == 0xfc
    }

    /// The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) IPv6 address.
    private static func embeddedIPv4(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }),
            (bytes[10] == 0xff && bytes[11] == 0xff) || (bytes[10] == 0 && bytes[11] == 0 && bytes[12] != 0)
        else { return nil }
        return Array(bytes[12...])
    }

    /// Whether an interface of this host has the address (a service bound to every address answers there too):
    /// read at each check from the kernel's tables of this network namespace, so that addresses added later count.
    static func isAddressOfThisHost(_ bytes: [UInt8]) -> Bool {
        let address = embeddedIPv4(bytes) ?? bytes
        return thisHostsAddresses().contains(address)
    }

    /// This host's addresses: IPv4 ones that /proc/net/fib_trie marks `/32 host LOCAL`, IPv6 ones of /proc/net/if_inet6.
    static func thisHostsAddresses() -> Set<[UInt8]> {
        var addresses = Set<[UInt8]>()
        var last: [UInt8]?
        for line in ((try? String(contentsOfFile: "/proc/net/fib_trie", encoding: .utf8)) ?? "").split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("|-- ") { last = addressBytes(String(text.dropFirst(4))) } else if text == "/32 host LOCAL", let last { addresses.insert(last) }
        }
        for line in ((try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? "").split(separator: "\n") {
            guard let hex = line.split(separator: " ").first, hex.count == 32 else { continue }
            let digits = Array(hex.utf8)
            let bytes = stride(from: 0, to: 32, by: 2).compactMap { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) }
            if bytes.count == 16 { addresses.insert(bytes) }
        }
        return addresses
    }

    private static func reachesThisHostOrLinkLocal(_ bytes: [UInt8]) -> Bool {
        // An IPv6 address with an IPv4 address inside is judged by that address.
        if let inside = embeddedIPv4(bytes) { return reachesThisHostOrLinkLocal(inside) }
        if bytes.count == 4 { return bytes[0] == 127 || bytes[0] == 0 || (bytes[0] == 169 && bytes[1] == 254) }
        let loopbackOrUnspecified = bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] <= 1
        return loopbackOrUnspecified || (bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80)
    }
}

extension ImportFilteringOptions {
    /// Reads the [import_filtering_opts] section, with oslo.config's list syntax; unset options keep Glance's defaults.
    public init(_ file: INIFile) throws(ConfigurationError) {
        let reader = OptionReader(ini: file)
        let section = "import_filtering_opts"
        allowedSchemes = try reader.list(section, Option.allowedSchemes.rawValue, default: allowedSchemes, expected: "a list of URI schemes, e.g. http,https") {
            $0.lowercased()
        }
        disallowedSchemes = try reader.list(section, Option.disallowedSchemes.rawValue, default: disallowedSchemes, expected: "a list of URI schemes, e.g. ftp")
        { $0.lowercased() }
        allowedHosts = try reader.list(section, Option.allowedHosts.rawValue, default: allowedHosts, expected: "a list of host names or IP addresses") {
            $0.lowercased()
        }
        disallowedHosts = try reader.list(section, Option.disallowedHosts.rawValue, default: disallowedHosts, expected: "a list of host names or IP addresses")
        { $0.lowercased() }
        let port: (String) -> Int? = { Int($0).flatMap { (1...65535).contains($0) ? $0 : nil } }
        allowedPorts = try reader.list(section, Option.allowedPorts.rawValue, default: allowedPorts, expected: "a list of port numbers from 1 to 65535", port)
        disallowedPorts = try reader.list(
            section, Option.disallowedPorts.rawValue, default: disallowedPorts, expected: "a list of port numbers from 1 to 65535", port)
    }
}

/// How much, and how long, a download may take.
public struct DownloadLimits: Sendable, Equatable {
    /// The most body bytes accepted (Glance's image_size_cap defaults to 1 TiB).
    public var maxBytes: Int64
    /// Seconds to wait for each TCP connection attempt.
    public var connectTimeout: Double
    /// Seconds without a single byte from the server before giving up.
    public var stallTimeout: Double
    /// Redirects followed before giving up (urllib, which Glance uses, follows 10).
    public var maxRedirects: Int
    /// Seconds the whole download may take, redirects included (a server may drip bytes inside the stall timeout).
    public var totalTimeout: Double

    public init(
        maxBytes: Int64 = 1 << 40, connectTimeout: Double = 30, stallTimeout: Double = 60, maxRedirects: Int = 10,
        totalTimeout: Double = 21_600
    ) {
        self.maxBytes = maxBytes
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.maxRedirects = maxRedirects
        self.totalTimeout = totalTimeout
    }
}

/// Why a web-download did not deliver the image, worded for the person who asked for it.
public enum DownloadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An [import_filtering_opts] rule refused the URI (or a redirect's target); `value` is what it refused.
    case refused(uri: String, option: ImportFilteringOptions.Option, value: String)
    /// The host resolves only to addresses a fetch may not reach (loopback, link-local, disallowed_hosts).
    case addressRefused(host: String, addresses: [String])
    case malformedURI(uri: String, reason: String)
    /// The filter allows the scheme but this fetcher cannot speak it.
    case unsupportedScheme(uri: String, scheme: String)
    case hostNotResolvable(host: String, reason: String)
    case connectionRefused(host: String, port: Int)
    case connectionFailed(host: String, port: Int, reason: String)
    case connectTimeout(host: String, port: Int, seconds: Double)
    /// The TLS handshake failed, the server's certificate among other reasons.
    case tlsFailed(host: String, port: Int, reason: String)
    case stalled(uri: String, seconds: Double)
    case deadlineExceeded(uri: String, seconds: Double)
    /// The server's reply was not HTTP/1.x as we can read it.
    case protocolError(uri: String, reason: String)
    case httpStatus(uri: String, code: Int, reason: String)
    case tooManyRedirects(uri: String, limit: Int)
    case redirectWithoutLocation(uri: String, code: Int)
    case tooLarge(uri: String, limit: Int64)
    case truncated(uri: String, received: Int64, expected: Int64)
    case sinkFailed(message: String)

    public var description: String {
        switch self {
        case let .refused(uri, option, value):
            let (what, quoted) = Self.subject(option, value)
            let advice =
                option.rawValue.hasPrefix("allowed")
                ? "\(what) \(quoted) is not in [import_filtering_opts] \(option.rawValue); use a URI it allows, or ask the operator to add \(quoted) to it"
                : "\(what) \(quoted) is in [import_filtering_opts] \(option.rawValue); use another URI, or ask the operator to remove \(quoted) from it"
            return "web-download refused \(uri): \(advice)"
        case let .addressRefused(host, addresses):
            return
                "web-download refused host \(host): its addresses (\(addresses.joined(separator: ", "))) reach this host (loopback, 0.0.0.0, ::, its own interfaces), are link-local, private (with [stagingfs] web_download_refuse_private_addresses) or in [import_filtering_opts] disallowed_hosts; ask the operator to add \(host) to allowed_hosts if it is meant to be reachable"
        case let .malformedURI(uri, reason):
            return "'\(uri)' is not a usable URI: \(reason)"
        case let .unsupportedScheme(uri, scheme):
            return "cannot fetch \(uri): the scheme '\(scheme)' is not supported; use an http:// or https:// URI"
        case let .hostNotResolvable(host, reason):
            return "the host \(host) cannot be resolved (\(reason)); check the host name in the URI"
        case let .connectionRefused(host, port):
            return "\(host) refused the connection on port \(port); check the URI's host and port, or that the server is running"
        case let .connectionFailed(host, port, reason):
            return "the connection to \(host) port \(port) failed: \(reason); check the URI and retry"
        case let .connectTimeout(host, port, seconds):
            return "no connection to \(host) port \(port) within \(Self.seconds(seconds)); the host may be down or firewalled"
        case let .tlsFailed(host, port, reason):
            return "the TLS connection to \(host) port \(port) failed: \(reason); check that the URI names the host its certificate was issued for"
        case let .stalled(uri, seconds):
            return "the server of \(uri) sent nothing for \(Self.seconds(seconds)); retry later or use another mirror"
        case let .deadlineExceeded(uri, seconds):
            return
                "the download of \(uri) did not finish within \(Self.seconds(seconds)) ([stagingfs] web_download_timeout); use a faster mirror, or ask the operator to raise the limit"
        case let .protocolError(uri, reason):
            return "the server of \(uri) did not answer in HTTP/1.1: \(reason)"
        case let .httpStatus(uri, code, reason):
            return "the server answered \(code) \(reason) for \(uri); check that the URI points at the image"
        case let .tooManyRedirects(uri, limit):
            return "\(uri) redirected more than \(limit) times; use the final URI of the image"
        case let .redirectWithoutLocation(uri, code):
            return "the server answered \(uri) with redirect \(code) but no Location; use the final URI of the image"
        case let .tooLarge(uri, limit):
            return "the body of \(uri) is larger than the limit of \(limit) bytes; use a smaller image or ask the operator to raise the limit"
        case let .truncated(uri, received, expected):
            return "the connection closed after \(received) of \(expected) bytes of \(uri); retry the import"
        case let .sinkFailed(message):
            return "the download could not be stored: \(message)"
        }
    }

    private static func subject(_ option: ImportFilteringOptions.Option, _ value: String) -> (String, String) {
        switch option {
        case .allowedSchemes, .disallowedSchemes: return ("the scheme", "'\(value)'")
        case .allowedHosts, .disallowedHosts: return ("the host", "'\(value)'")
        case .allowedPorts, .disallowedPorts: return ("the port", value)
        }
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

/// Fetches the image of a web-download import.
public protocol WebDownloading: Sendable {
    /// Streams the body of `uri` into `sink` chunk by chunk (bounded memory), following redirects that pass `filter`. Returns the byte count.
    func download(_ uri: String, filter: ImportFilteringOptions, limits: DownloadLimits, sink: (Data) throws -> Void) throws(DownloadError) -> Int64
}
