// The API's TCP listener: Glance's bind options, its TLS files, and who a request is when there is no Keystone.
import Foundation

/// How requests over TCP are authenticated. Nothing a client sends about itself (X-Roles, X-Project-Id…) is read.
public enum TCPAuthentication: Sendable, Equatable {
    /// `[paste_deploy] flavor = keystone`: every request's X-Auth-Token is validated against Keystone as
    /// `[keystone_authtoken]` says.
    case keystone(KeystoneAuthConfiguration)
    /// `[stagingfs] tcp_noauth_identity = NAME`: every request is the identity of `[identity:NAME]`. Loopback only.
    case noauth(Identity)
}

public struct TCPListenerConfiguration: Sendable, Equatable {
    /// `[DEFAULT] bind_host` and `bind_port`, Glance's defaults.
    public var host = "0.0.0.0"
    public var port = 9292
    /// `[DEFAULT] cert_file` and `key_file`: TLS when both are set.
    public var certificateFile: String?
    public var keyFile: String?
    /// nil: no TCP listener (only the Unix socket), which is what a configuration without Keystone or an explicit
    /// noauth identity gets.
    public var authentication: TCPAuthentication?

    public init() {}

    /// Loopback names and addresses: where a noauth listener may bind.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Reads the options; `identities` are the `[identity:NAME]` sections, by name, for the noauth identity.
    init(_ reader: OptionReader, identities: [String: Identity]) throws(ConfigurationError) {
        host = reader.ini.entry("DEFAULT", "bind_host")?.value ?? host
        port = try reader.value("DEFAULT", "bind_port", default: port, expected: "a port number from 1 to 65535") {
            Int($0).flatMap { (1...65535).contains($0) ? $0 : nil }
        }
        certificateFile = reader.ini.entry("DEFAULT", "cert_file")?.value
        keyFile = reader.ini.entry("DEFAULT", "key_file")?.value
        if (certificateFile == nil) != (keyFile == nil) {
            throw .missingOption(
                option: certificateFile == nil ? "[DEFAULT] cert_file" : "[DEFAULT] key_file",
                hint: "TLS needs both cert_file and key_file; set both, or neither for plain HTTP")
        }
        let flavor = reader.ini.entry("paste_deploy", "flavor")?.value.lowercased()
        let noauth = reader.ini.entry("stagingfs", "tcp_noauth_identity")
        if let noauth {
            guard flavor != "keystone" else {
                throw .invalidValue(
                    option: "[stagingfs] tcp_noauth_identity", value: noauth.value, file: noauth.file, line: noauth.line,
                    expected: "no value while [paste_deploy] flavor = keystone: requests are then authenticated by Keystone")
            }
            guard let identity = identities[noauth.value] else {
                throw .invalidValue(
                    option: "[stagingfs] tcp_noauth_identity", value: noauth.value, file: noauth.file, line: noauth.line,
                    expected: "the NAME of an [identity:NAME] section (its project_id, user_id and roles are every request's)")
            }
            guard Self.isLoopback(host) else {
                throw .invalidValue(
                    option: "[DEFAULT] bind_host", value: host, file: reader.ini.entry("DEFAULT", "bind_host")?.file,
                    line: reader.ini.entry("DEFAULT", "bind_host")?.line,
                    expected:
                        "a loopback address (127.0.0.1, ::1 or localhost) while tcp_noauth_identity is set: without Keystone, anyone who can connect is that identity"
                )
            }
            authentication = .noauth(identity)
        } else if flavor == "keystone" {
            authentication = .keystone(try KeystoneAuthConfiguration(reader))
        }
    }
}
