// The options every command takes: output, and which daemon to talk to (its Unix socket, or its API over TCP).
import ArgumentParser
import Foundation

struct GlobalOptions: ParsableArguments {
    @Option(help: "The daemon's API socket (default: $STAGINGFS_SOCKET, else /var/lib/stagingfs/api.sock).")
    var socket: String?

    @Option(
        name: .customLong("os-image-url"),
        help: "The image API over TCP, http(s)://host:port (default: $OS_IMAGE_URL); when set, used instead of the socket.")
    var osImageURL: String?

    @Option(
        name: .customLong("os-auth-token"),
        help: "A Keystone token for the API over TCP (default: $OS_AUTH_TOKEN, else one issued for $OS_AUTH_URL, $OS_USERNAME…).")
    var osAuthToken: String?

    @Option(name: .customLong("os-cacert"), help: "PEM certificates to trust for https (default: $OS_CACERT, else the system's).")
    var osCACert: String?

    @Flag(help: "Print JSON for scripts instead of tables.")
    var json = false

    /// A client over TCP when an image URL is given, else over the Unix socket.
    var client: APIClient {
        get throws {
            let environment = ProcessInfo.processInfo.environment
            func setting(_ option: String?, _ variable: String) -> String? {
                (option ?? environment[variable]).flatMap { $0.isEmpty ? nil : $0 }
            }
            guard let imageURL = setting(osImageURL, "OS_IMAGE_URL") else {
                return APIClient(transport: HTTPTransport(address: .unixSocket(path: setting(socket, "STAGINGFS_SOCKET") ?? "/var/lib/stagingfs/api.sock")))
            }
            guard let url = URL(string: imageURL), ["http", "https"].contains(url.scheme), url.host != nil else {
                throw RemoteFailure.badURL(variable: osImageURL == nil ? "OS_IMAGE_URL" : "--os-image-url", value: imageURL)
            }
            var base = imageURL
            while base.hasSuffix("/") { base.removeLast() }
            let caFile = setting(osCACert, "OS_CACERT")
            let origin: TokenSource.Origin
            if let token = setting(osAuthToken, "OS_AUTH_TOKEN") {
                origin = .given(token)
            } else if let credentials = try KeystoneCredentials.from(environment, caFile: caFile) {
                origin = .keystone(credentials)
            } else {
                origin = .none  // A noauth listener takes requests without a token.
            }
            return APIClient(transport: HTTPTransport(address: .tcp(baseURL: base, tokens: TokenSource(origin), caFile: caFile)))
        }
    }
}

/// Runs a command body; a failure is printed for people and becomes its exit code.
func perform(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as any CtlFailure {
        FileHandle.standardError.write(Data("importctl: error: \(failure.description)\n".utf8))
        throw ExitCode(failure.exit.rawValue)
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("importctl: error: \(error)\n".utf8))
        throw ExitCode(CtlExit.failure.rawValue)
    }
}
