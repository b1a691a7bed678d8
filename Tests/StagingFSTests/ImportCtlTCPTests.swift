// importctl over TCP (OS_IMAGE_URL), as a remote client uses it: Keystone tokens from the usual OS_* variables
// against a listener that validates them with the real Keystone, a refused token, and a noauth loopback listener.
import Foundation
import StagingTestSupport
import Testing

@Suite("importctl over TCP", .serialized)
struct ImportCtlTCPTests {
    static func jsonObject(_ result: CommandResult) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    }

    @Test(
        "image-create-via-import with alice's OS_* credentials: importctl gets a Keystone token and stages through the API; the image is active with the file's sha512, owned by alice's Keystone project"
    )
    func createViaImportWithKeystoneCredentials() throws {
        let keystone = try TestKeystone.deployment()
        let alice = try TestKeystone.environment(for: "alice")
        try KeystoneAuthTests.withKeystoneMount { mount, base throws in
            let source = mount.sourcePath("disk.raw")
            try makeRandomFile(source, bytes: 3 << 20 + 12345)
            let result = try StagingMount.importctl(
                ["image-create-via-import", "--file", source, "--name", "remote", "--json"],
                imageURL: base, environment: alice)
            #expect(result.succeeded, "\(result)")
            let image = try #require(Self.jsonObject(result), "\(result)")
            #expect(image["status"] as? String == "active")
            #expect(image["os_hash_value"] as? String == (try digest("sha512sum", of: source)))
            #expect(image["size"] as? Int == 3 << 20 + 12345)
            #expect(image["owner"] as? String == keystone.projects["project-a"])
        }
    }

    @Test("--via mount over TCP is refused before anything is created: exit 1, saying the mount is on the daemon's host")
    func viaMountOverTCPRefused() throws {
        let alice = try TestKeystone.environment(for: "alice")
        try KeystoneAuthTests.withKeystoneMount { mount, base throws in
            let source = mount.sourcePath("small.raw")
            try makeRandomFile(source, bytes: 4096)
            let result = try StagingMount.importctl(["image-create-via-import", "--file", source, "--via", "mount"], imageURL: base, environment: alice)
            #expect(result.status == 1, "\(result)")
            #expect(result.stderr.contains("--via mount") && result.stderr.contains("OS_IMAGE_URL"), "\(result)")
            let listed = try StagingMount.importctl(["image-list", "--json"], imageURL: base, environment: alice)
            let images = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any]
            #expect(listed.succeeded && images?.isEmpty == true, "no image was created: \(listed)")
        }
    }

    @Test("a garbage OS_AUTH_TOKEN: exit 5 and a message that the token was refused and how to get one; a wrong OS_PASSWORD: exit 5 naming Keystone")
    func refusedToken() throws {
        try KeystoneAuthTests.withKeystoneMount { mount, base throws in
            let source = mount.sourcePath("small.raw")
            try makeRandomFile(source, bytes: 4096)
            let garbage = try StagingMount.importctl(
                ["image-create-via-import", "--file", source], imageURL: base,
                environment: ["OS_AUTH_TOKEN": "gAAAAABgarbage"])
            #expect(garbage.status == 5, "\(garbage)")
            #expect(garbage.stderr.contains("refused the token") && garbage.stderr.contains("OS_AUTH_TOKEN"), "\(garbage)")
            var wrong = try TestKeystone.environment(for: "alice")
            wrong["OS_PASSWORD"] = "wrong"
            let login = try StagingMount.importctl(["image-list"], imageURL: base, environment: wrong)
            #expect(login.status == 5, "\(login)")
            #expect(login.stderr.contains("Keystone") && login.stderr.contains("refused user 'alice'"), "\(login)")
        }
    }

    @Test("bob (project-b) does not see alice's image over TCP: image-show and a 16 MiB stage exit 4 (not found); a stage with a garbage token exits 5")
    func otherProjectNotFound() throws {
        let alice = try TestKeystone.environment(for: "alice")
        let bob = try TestKeystone.environment(for: "bob")
        try KeystoneAuthTests.withKeystoneMount { mount, base throws in
            let created = try StagingMount.importctl(["image-create", "--name", "alices", "--json"], imageURL: base, environment: alice)
            let id = try #require(Self.jsonObject(created)?["id"] as? String, "\(created)")
            #expect(try StagingMount.importctl(["image-show", id], imageURL: base, environment: alice).succeeded)
            let shown = try StagingMount.importctl(["image-show", id], imageURL: base, environment: bob)
            #expect(shown.status == 4, "\(shown)")
            // Refused before the body is read: the answer still arrives while the upload is under way.
            let source = mount.sourcePath("big.raw")
            try makeRandomFile(source, bytes: 16 << 20)
            let staged = try StagingMount.importctl(["stage", id, "--file", source], imageURL: base, environment: bob)
            #expect(staged.status == 4, "\(staged)")
            let garbage = try StagingMount.importctl(["stage", id, "--file", source], imageURL: base, environment: ["OS_AUTH_TOKEN": "gAAAAABgarbage"])
            #expect(garbage.status == 5 && garbage.stderr.contains("refused the token"), "\(garbage)")
        }
    }

    @Test("an OS_IMAGE_URL nothing listens on: exit 3 and a message naming the URL and OS_IMAGE_URL")
    func unreachableURL() throws {
        let url = "http://127.0.0.1:\(try freeTCPPort())"
        let result = try StagingMount.importctl(["image-list"], imageURL: url)
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains(url) && result.stderr.contains("OS_IMAGE_URL"), "\(result)")
    }

    @Test("a noauth loopback listener: image-list without any token lists an image created over TCP; over https with OS_CACERT too")
    func noauthListener() throws {
        try TCPListenerTests.withTCPMount { _, base, _ throws in
            let created = try StagingMount.importctl(["image-create", "--name", "noauth-image", "--json"], imageURL: base)
            let id = try #require(Self.jsonObject(created)?["id"] as? String, "\(created)")
            let listed = try StagingMount.importctl(["image-list"], imageURL: base)
            #expect(listed.succeeded && listed.stdout.contains(id), "\(listed)")
        }
        try TCPListenerTests.withTCPMount(tls: true) { _, base, certificate throws in
            let listed = try StagingMount.importctl(["image-list", "--json"], imageURL: base, environment: ["OS_CACERT": try #require(certificate)])
            #expect(listed.succeeded, "\(listed)")
            let untrusted = try StagingMount.importctl(["image-list"], imageURL: base)
            #expect(untrusted.status == 3, "without OS_CACERT the self-signed certificate is not trusted: \(untrusted)")
        }
    }
}
