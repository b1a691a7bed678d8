// An image's files in the backing directory as the import controller needs them: which exist, their sizes, and
// the residue a deletion or an interrupted import leaves. The controller never lists or stats backing files itself.
import Foundation
import SystemPackage

extension StagingArea {
    /// The backing directory's names that belong to images (`<image_id>` and `<image_id>.<ext>`), by image. A
    /// listing that fails is logged and finds nothing: the next delete or start looks again.
    public func imageFileNames() -> [String: [String]] {
        let names: [String]
        do { names = try backing.names() } catch {
            logger.error(
                "cannot list the backing directory; staging residue stays until the next attempt",
                metadata: [
                    "staging.backing_dir": "\(configuration.backingDirectory)", "error": "\(error)",
                ])
            return [:]
        }
        var byImage: [String: [String]] = [:]
        for name in names {
            if let id = ProjectOwnershipPolicy.imageIDPrefix(of: name) { byImage[id, default: []].append(name) }
        }
        return byImage
    }

    /// Removes what a deleted image left: its staged data and its intermediates, unless being written.
    public func removeResidue(ofImage imageID: String) {
        for name in imageFileNames()[imageID] ?? [] { removeResidue(name) }
    }

    /// Removes the `<id>.<ext>` outputs an interrupted import's plugins left.
    public func removeIntermediates(ofImage imageID: String) {
        for name in imageFileNames()[imageID] ?? [] where name != imageID { removeIntermediate(name) }
    }

    /// Whether the backing directory holds `name` (an image's staged data after an interrupted import: a copy
    /// left it in place, a renamed promotion took it away). A failure other than absence is logged and counts as
    /// present, so that a takeover never records a rename that did not happen.
    public func backingFileExists(_ name: String) -> Bool {
        do {
            _ = try backing.attributes(of: name)
            return true
        } catch Errno.noSuchFileOrDirectory {
            return false
        } catch {
            logger.error("cannot stat staged data; taking it as present", metadata: ["staging.file": "\(name)", "error": "\(error)"])
            return true
        }
    }

    /// The size of an intermediate a plugin's tool wrote.
    func intermediateSize(_ descriptor: FileDescriptor) throws(Errno) -> Int64 {
        try backing.attributes(of: descriptor).size
    }
}
