// The options every command takes: output, and which daemon to talk to (its Unix socket).
import ArgumentParser
import Foundation

struct GlobalOptions: ParsableArguments {
    @Option(help: "The daemon's API socket (default: $STAGINGFS_SOCKET, else /var/lib/stagingfs/api.sock).")
    var socket: String?

    @Flag(help: "Print JSON for scripts instead of tables.")
    var json = false

    var client: APIClient {
        APIClient(transport: UnixSocketTransport(socketPath: socket ?? ProcessInfo.processInfo.environment["STAGINGFS_SOCKET"] ?? "/var/lib/stagingfs/api.sock"))
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
