// importctl's command line as a user meets it: help texts compared exactly and every exit code the docs list,
// from the built binary (as swift-argument-parser's own tests do), against a real daemon where one is needed.
import Foundation
import StagingTestSupport
import Testing

@Suite("importctl: help text and exit codes")
struct ImportCtlCommandLineTests {
    /// Runs the built importctl with a fixed terminal width (help wraps to it) and no ambient configuration.
    func importctl(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        let binary = try StagingMount.importctlPath()
        let settings = (["COLUMNS": "80"].merging(environment) { $1 }).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return try run(["env", "-u", "OS_IMAGE_URL", "-u", "OS_AUTH_URL", "-u", "OS_AUTH_TOKEN"] + settings + [binary] + arguments)
    }

    static let overview = #"""
        OVERVIEW: Trigger and follow Glance-style image imports through a stagingfs
        daemon.

        Exit codes: 0 ok, 1 other failure, 3 daemon (or Keystone) unreachable, 4 not
        found, 5 forbidden, 6 conflict, 7 bad request, 8 import failed, 9 server error,
        10 timed out, 64 usage error.

        USAGE: importctl <subcommand>

        OPTIONS:
          -h, --help              Show help information.

        SUBCOMMANDS:
          versions                List the API versions the daemon offers (GET
                                  /versions).
          import-info             List the enabled import methods (GET /v2/info/import).
          image-create            Create an image record (POST /v2/images).
          image-list              List the images you may see (GET /v2/images).
          image-show              Show one image (GET /v2/images/{id}).
          image-delete            Delete an image and its staged data (DELETE
                                  /v2/images/{id}).
          stage                   Upload a file as an image's staged data through the
                                  API (PUT /v2/images/{id}/stage).
          import                  Import an image's staged data, or fetch it from a URI
                                  first (POST /v2/images/{id}/import).
          image-create-via-import Create an image, stage a file (through the mount when
                                  you can reach it, else the API), import it and wait.
          task-list               List tasks (GET /v2/tasks, admins), or an image's
                                  (GET /v2/images/{id}/tasks).
          task-show               Show one task (GET /v2/tasks/{id}, admins).
          policy-check            Ask the daemon's policy whether an action is allowed,
                                  and which rule decides (exit 0 allow, 5 deny).
          node-list               List the nodes sharing this staging area: id, host,
                                  mountpoint, last heartbeat, up/down, tasks held
                                  (admins).

          See 'importctl help <subcommand>' for detailed help.
        """#

    static let importHelp = #"""
        OVERVIEW: Import an image's staged data, or fetch it from a URI first (POST
        /v2/images/{id}/import).

        USAGE: importctl import [--socket <socket>] [--os-image-url <os-image-url>] [--os-auth-token <os-auth-token>] [--os-cacert <os-cacert>] [--json] <id> [--method <method>] [--uri <uri>] [--wait] [--timeout <timeout>]

        ARGUMENTS:
          <id>                    The image's ID.

        OPTIONS:
          --socket <socket>       The daemon's API socket (default: $STAGINGFS_SOCKET,
                                  else /var/lib/stagingfs/api.sock).
          --os-image-url <os-image-url>
                                  The image API over TCP, http(s)://host:port (default:
                                  $OS_IMAGE_URL); when set, used instead of the socket.
          --os-auth-token <os-auth-token>
                                  A Keystone token for the API over TCP (default:
                                  $OS_AUTH_TOKEN, else one issued for $OS_AUTH_URL,
                                  $OS_USERNAME…).
          --os-cacert <os-cacert> PEM certificates to trust for https (default:
                                  $OS_CACERT, else the system's).
          --json                  Print JSON for scripts instead of tables.
          --method <method>       The import method: glance-direct, or web-download
                                  with --uri. (default: glance-direct)
          --uri <uri>             For web-download: the http(s) URI to fetch the image
                                  from.
          --wait                  Wait until the import task ends, showing progress.
          --timeout <timeout>     Seconds to wait at most, with --wait. (default:
                                  3600.0)
          -h, --help              Show help information.

        """#

    @Test("importctl --help, importctl help and importctl alone print the overview, with the exit codes, and exit 0")
    func overview() throws {
        for arguments in [["--help"], ["help"], []] {
            let result = try importctl(arguments)
            #expect(result.status == 0, "\(arguments): \(result)")
            #expect(result.stdout == Self.overview + "\n", "\(arguments)")
        }
    }

    @Test("importctl import --help lists its arguments, the shared options and their defaults exactly")
    func importHelpText() throws {
        let result = try importctl(["import", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout == Self.importHelp + "\n")
        #expect(try importctl(["help", "import"]).stdout == Self.importHelp + "\n")
    }

    @Test("usage errors exit 64 and say what was wrong and where to look")
    func usageErrors() throws {
        let unknown = try importctl(["nonsense"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr == "Error: Unexpected argument 'nonsense'\nUsage: importctl <subcommand>\n  See 'importctl --help' for more information.\n")
        let missing = try importctl(["image-show"])
        #expect(missing.status == 64)
        #expect(missing.stderr.hasPrefix("Error: Missing expected argument '<id>'\nHelp:  <id>  The image's ID.\n"), "\(missing)")
        let badOption = try importctl(["image-list", "--no-such-option"])
        #expect(badOption.status == 64 && badOption.stderr.hasPrefix("Error: Unknown option '--no-such-option'"), "\(badOption)")
        let badTimeout = try importctl(["import", "some-id", "--wait", "--timeout", "soon"])
        #expect(badTimeout.status == 64 && badTimeout.stderr.contains("soon"), "\(badTimeout)")
        let badURL = try importctl(["image-list"], environment: ["OS_IMAGE_URL": "ftp://x"])
        #expect(badURL.status == 64)
        #expect(badURL.stderr == "importctl: error: OS_IMAGE_URL must be an http:// or https:// URL with a host, not 'ftp://x'\n")
    }

    @Test("no daemon at the socket or at OS_IMAGE_URL exits 3 and names where it looked")
    func unreachable() throws {
        let socket = try importctl(["image-list", "--socket", "/nonexistent/api.sock"])
        #expect(socket.status == 3 && socket.stderr.contains("/nonexistent/api.sock") && socket.stderr.contains("is the daemon running?"), "\(socket)")
        // Port 1 on loopback: nothing listens there.
        let tcp = try importctl(["image-list", "--os-image-url", "http://127.0.0.1:1"])
        #expect(tcp.status == 3 && tcp.stderr.contains("http://127.0.0.1:1") && tcp.stderr.contains("check OS_IMAGE_URL"), "\(tcp)")
    }

    @Test("image-list shows every image, past the API's largest page (1,000), as glance image-list does")
    func imageListFollowsPages() throws {
        try withStagingMount { mount throws in
            // 1,010 images straight over the socket (one process; importctl per image would take minutes).
            let script = """
                import http.client, socket, sys
                class Unix(http.client.HTTPConnection):
                    def connect(self):
                        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
                for i in range(1010):
                    c = Unix("localhost"); c.request("POST", "/v2/images", '{"name": "page-%d"}' % i, {"Content-Type": "application/json"})
                    assert c.getresponse().status == 201; c.close()
                """
            #expect(try run(["python3", "-c", script, mount.socket]).succeeded)
            let listed = try mount.importctl(["image-list", "--json"])
            let images = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
            #expect(images?.count == 1010, "\(listed.stderr)")
            #expect(Set(images?.compactMap { $0["name"] as? String } ?? []).count == 1010, "each image once")
        }
    }

    @Test("a daemon's answers map to the documented exit codes: 1, 4, 5, 6, 7, 8, 10")
    func answersToExitCodes() throws {
        try withStagingMount { mount throws in
            let alice = try TestUser.alice
            let source = mount.sourcePath("small.raw")
            try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: source))

            let unreadable = try mount.importctl(["stage", try createImage(mount), "--file", mount.sourcePath("absent.raw")])
            #expect(unreadable.status == 1 && unreadable.stderr.contains("absent.raw"), "\(unreadable)")
            let notFound = try mount.importctl(["image-show", UUID().uuidString.lowercased()])
            #expect(notFound.status == 4, "\(notFound)")
            let forbidden = try mount.importctl(["task-list"], as: alice)
            #expect(forbidden.status == 5, "listing every task is for admins: \(forbidden)")
            let badRequest = try mount.importctl(["image-create", "--name", "x", "--disk-format", "floppy"])
            #expect(badRequest.status == 7 && badRequest.stderr.contains("floppy"), "\(badRequest)")

            let imported = try createImage(mount)
            #expect(try mount.importctl(["stage", imported, "--file", source]).succeeded)
            #expect(try mount.importctl(["import", imported, "--wait"]).succeeded)
            let conflict = try mount.importctl(["stage", imported, "--file", source])
            #expect(conflict.status == 6, "an active image takes no more data: \(conflict)")

            let changed = try createImage(mount)
            #expect(try mount.importctl(["stage", changed, "--file", source]).succeeded)
            #expect(truncate(mount.backingPath(changed), 50_000) == 0)
            let failed = try mount.importctl(["import", changed, "--wait"])
            #expect(failed.status == 8 && failed.stderr.contains("failed"), "\(failed)")

            let waited = try createImage(mount)
            #expect(try mount.importctl(["stage", waited, "--file", source]).succeeded)
            let timedOut = try mount.importctl(["import", waited, "--wait", "--timeout", "0"])
            #expect(timedOut.status == 10 && timedOut.stderr.contains("task-list --image \(waited)"), "\(timedOut)")
        }
    }
}
