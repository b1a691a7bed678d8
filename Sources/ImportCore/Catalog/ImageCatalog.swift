// Where images and import tasks persist, behind one protocol (SQLite now; PostgreSQL later).
import Foundation

/// Images and tasks. `updateImage` is the unit of work every image change goes through: it reads, lets the
/// caller check and change the image, and writes, atomically.
public protocol ImageCatalog: Sendable {
    func image(_ id: String) throws -> Image?
    /// Every image not deleted, newest first (who may see which is the controller's business).
    func images() throws -> [Image]
    func insert(_ image: Image) throws
    /// Atomically applies `change` to the image and returns the result; `change` may throw to leave it as it was.
    @discardableResult
    func updateImage(_ id: String, _ change: (inout Image) throws -> Void) throws -> Image

    func task(_ id: String) throws -> ImportTask?
    /// Tasks, newest first: one image's, or every task when `imageID` is nil.
    func tasks(imageID: String?) throws -> [ImportTask]
    func tasks(status: TaskStatus) throws -> [ImportTask]
    func save(_ task: ImportTask) throws
    /// Deletes tasks whose `expires_at` is before `date`; returns how many.
    func purgeTasks(expiredBefore date: Date) throws -> Int
}
