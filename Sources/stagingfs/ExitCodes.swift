// The daemon's exit codes, in one place (sysexits.h values). Documented in docs/operator-guide.md.
import ArgumentParser

enum DaemonExit {
    /// Clean shutdown: unmounted after SIGINT/SIGTERM or an external unmount.
    static let success = ExitCode.success
    /// A configuration file or value is malformed (EX_CONFIG).
    static let configuration = ExitCode(78)
    /// The backing directory, state directory or catalog cannot be used (EX_CANTCREAT).
    static let storage = ExitCode(73)
    /// The mount could not be made or served (EX_OSERR).
    static let mount = ExitCode(71)
}
