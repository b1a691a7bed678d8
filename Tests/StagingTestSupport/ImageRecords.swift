// Image records through the daemon's API, as a user would make and read them with importctl.
import Foundation

/// Creates a raw/bare image as `user` and returns its id.
public func createImage(_ mount: StagingMount, as user: TestUser? = nil, name: String = "test", formats: Bool = true) throws -> String {
    var arguments = ["image-create", "--name", name]
    if formats { arguments += ["--disk-format", "raw", "--container-format", "bare"] }
    guard let id = try mount.importctlJSON(arguments, as: user)["id"] as? String else { throw TestSetupError("no id") }
    return id
}

/// The image's status as `user` sees it (`?` when the answer has none).
public func imageStatus(_ mount: StagingMount, _ id: String, as user: TestUser? = nil) throws -> String {
    try mount.importctlJSON(["image-show", id], as: user)["status"] as? String ?? "?"
}
