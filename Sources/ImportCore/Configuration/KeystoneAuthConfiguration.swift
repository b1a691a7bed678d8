// `[keystone_authtoken]`: how the API validates tokens, with keystonemiddleware's option names and defaults.
import Foundation

public struct KeystoneAuthConfiguration: Sendable, Equatable {
    /// `auth_url`: where the service user authenticates and tokens are validated (Keystone's v3 API; `/v3` is
    /// appended when missing).
    public var authURL: URL
    /// `www_authenticate_uri` (or the older `auth_uri`): sent to clients in `WWW-Authenticate` on a 401.
    public var wwwAuthenticateURI: String
    /// The service user's password credentials (`auth_type = password`).
    public var username: String
    public var password: String
    public var projectName: String
    public var userDomainName: String
    public var projectDomainName: String
    /// `token_cache_time`: seconds a validated token (or a refused one) is remembered; -1 disables the cache.
    public var tokenCacheTime: Int
    /// `http_connect_timeout` / `http_request_timeout`: how long one call to Keystone may take.
    public var httpConnectTimeout: Int
    public var httpRequestTimeout: Int
    /// `cafile`: the CA bundle for an https Keystone; `insecure` skips verification (keystonemiddleware's names).
    public var caFile: String?
    public var insecure: Bool

    init(_ reader: OptionReader) throws(ConfigurationError) {
        let section = "keystone_authtoken"
        func required(_ key: String, _ what: String) throws(ConfigurationError) -> String {
            guard let value = reader.ini.entry(section, key)?.value, !value.isEmpty else {
                throw .missingOption(
                    option: "[\(section)] \(key)",
                    hint: "[paste_deploy] flavor = keystone validates every token against Keystone and needs \(what)")
            }
            return value
        }
        let authType = reader.ini.entry(section, "auth_type")
        if let authType, authType.value != "password" {
            throw .invalidValue(
                option: "[\(section)] auth_type", value: authType.value, file: authType.file, line: authType.line,
                expected: "password (the service user's username, password and project; other keystoneauth plugins are not supported)")
        }
        let urlText = try required("auth_url", "the Keystone URL the service user authenticates against, e.g. http://keystone:5000/v3")
        guard let url = URL(string: urlText), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            let entry = reader.ini.entry(section, "auth_url")
            throw .invalidValue(
                option: "[\(section)] auth_url", value: urlText, file: entry?.file, line: entry?.line,
                expected: "an http:// or https:// URL of Keystone, e.g. http://keystone:5000/v3")
        }
        authURL = url
        wwwAuthenticateURI =
            reader.ini.entry(section, "www_authenticate_uri")?.value
            ?? reader.ini.entry(section, "auth_uri")?.value ?? urlText
        username = try required("username", "the service user's name (username)")
        password = try required("password", "the service user's password")
        projectName = try required("project_name", "the service user's project (project_name, usually service)")
        userDomainName = reader.ini.entry(section, "user_domain_name")?.value ?? "Default"
        projectDomainName = reader.ini.entry(section, "project_domain_name")?.value ?? "Default"
        tokenCacheTime = try reader.value(section, "token_cache_time", default: 300, expected: "seconds, or -1 to disable the cache") {
            Int($0).flatMap { $0 >= -1 ? $0 : nil }
        }
        httpConnectTimeout = try reader.value(section, "http_connect_timeout", default: 10, expected: "seconds, at least 1") {
            Int($0).flatMap { $0 >= 1 ? $0 : nil }
        }
        httpRequestTimeout = try reader.value(section, "http_request_timeout", default: 30, expected: "seconds, at least 1") {
            Int($0).flatMap { $0 >= 1 ? $0 : nil }
        }
        caFile = reader.ini.entry(section, "cafile")?.value
        insecure = try reader.bool(section, "insecure", default: false)
    }
}
