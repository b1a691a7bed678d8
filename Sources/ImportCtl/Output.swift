// How importctl shows things: tables for people, JSON for scripts, a progress bar on a terminal.
import Foundation
import GlanceModels
import Synchronization

/// importctl's exit codes (documented in docs/importctl.md).
enum CtlExit: Int32 {
    case success = 0
    case failure = 1
    case unreachable = 3
    case notFound = 4
    case forbidden = 5
    case conflict = 6
    case badRequest = 7
    case importFailed = 8
    case serverError = 9
    case timedOut = 10
    /// Options or OS_* variables that do not fit together (as ArgumentParser's own usage errors).
    case usage = 64

    init(status: Int) {
        switch status {
        case 404: self = .notFound
        case 403, 401: self = .forbidden
        case 409: self = .conflict
        case 400..<500: self = .badRequest
        case 500...: self = .serverError
        default: self = .failure
        }
    }
}

enum Output {
    /// A model as the JSON object it is on the wire, for printing.
    static func object(_ value: some Encodable) -> [String: Any] {
        (try? GlanceCoding.encode(value)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
    }

    static func json(_ object: Any) {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        print(String(decoding: data, as: UTF8.self))
    }

    static func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let number as NSNumber where String(cString: number.objCType) == "c": return number.boolValue ? "true" : "false"
        case let dictionary as [String: Any]:
            return dictionary.keys.sorted().map { "\($0)=\(text(dictionary[$0]))" }.joined(separator: " ")
        case let value?: return "\(value)"
        }
    }

    /// Rows under a header, columns padded to their widest cell.
    static func table(_ columns: [String], _ rows: [[String: Any]]) {
        let cells = rows.map { row in columns.map { text(row[$0]) } }
        let widths = columns.indices.map { index in max(columns[index].count, cells.map { $0[index].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        print(line(columns))
        print(line(widths.map { String(repeating: "-", count: $0) }))
        for row in cells { print(line(row)) }
    }

    /// A two-column property listing.
    static func properties(_ object: [String: Any]) {
        let width = object.keys.map(\.count).max() ?? 0
        for key in object.keys.sorted() { print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + text(object[key])) }
    }
}

/// A progress bar on standard error, drawn only when it is a terminal.
/// Sendable: the upload over TCP updates it from the task that reads the file.
final class ProgressBar: Sendable {
    private let label: String
    private let total: Int64
    private let start = Date()
    private let enabled = isatty(STDERR_FILENO) == 1
    private let lastDraw = Mutex(Date.distantPast)

    init(_ label: String, total: Int64) {
        self.label = label
        self.total = max(total, 1)
    }

    func update(_ done: Int64) {
        let due = lastDraw.withLock { last in
            guard Date().timeIntervalSince(last) > 0.1 || done >= total else { return false }
            last = Date()
            return true
        }
        guard enabled, due else { return }
        let fraction = min(1, Double(done) / Double(total))
        let filled = Int(fraction * 30)
        let rate = Double(done) / max(Date().timeIntervalSince(start), 0.001) / 1_048_576
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ [%@] %3.0f%% %.0f MiB/s", label, bar, fraction * 100, rate).utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
