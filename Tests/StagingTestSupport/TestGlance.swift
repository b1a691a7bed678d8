// A real, unmodified Glance 33 for tests: the one scripts/start-glance runs on loopback (glance-api under gunicorn,
// SQLite, file store, a trusted-auth pipeline that takes the caller's identity from X-Identity-Status/X-User-Id/
// X-Project-Id/X-Roles), and the JSON "shape" the differential test compares StagingFS's answers with it by.
import Foundation
import Synchronization

public enum TestGlance {
    private static let started = Mutex<String?>(nil)

    /// Glance's base URL, started on demand: scripts/start-glance is idempotent and serialized, so a Glance already
    /// running (scripts/test's, or one started by hand) is reused. The venv is the one of the repository this test
    /// was built from, unless STAGINGFS_OPENSTACK_VENV says otherwise.
    public static func baseURL() throws -> String {
        try started.withLock { started in
            if let started { return started }
            let script = repositoryRoot + "/scripts/start-glance"
            var environment: [String: String] = [:]
            if ProcessInfo.processInfo.environment["STAGINGFS_OPENSTACK_VENV"] == nil {
                environment["STAGINGFS_OPENSTACK_VENV"] = repositoryRoot + "/.build/venv-openstack"
            }
            let result = try run([script], environment: environment)
            guard result.succeeded, let url = result.stdout.split(separator: "\n").last.map(String.init), url.hasPrefix("http") else {
                throw TestSetupError("\(script) failed: \(result)")
            }
            started = url
            return url
        }
    }

    /// The trusted-auth identity headers for a member of project-a (alice) and for an admin of project-a.
    public static let member = ["X-Identity-Status: Confirmed", "X-User-Id: alice", "X-Project-Id: project-a", "X-Roles: member,reader"]
    public static let admin = ["X-Identity-Status: Confirmed", "X-User-Id: admin", "X-Project-Id: project-a", "X-Roles: admin,member,reader"]
}

/// A decoded JSON value that keeps JSON's own types apart (JSONSerialization's NSNumber blurs booleans and numbers).
public indirect enum JSONValue: Decodable, Sendable {
    case null, boolean(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .boolean(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// The body as JSON (nil when it is not JSON).
    public static func parse(_ text: String) -> JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }

    public var typeName: String {
        switch self {
        case .null: "null"
        case .boolean: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// The shape of a JSON value, flattened: each path (`images[].name`, `properties.owner`) → its type name
/// (`string`, `integer`, `number`, `boolean`, `null`, `object`, `array`). Objects descend into their keys, arrays
/// into their first element (an empty array has no children). Values themselves (ids, dates) are left out.
public func jsonShape(_ value: JSONValue, at path: String = "") -> [String: String] {
    var shape: [String: String] = [path.isEmpty ? "." : path: value.typeName]
    switch value {
    case .object(let object):
        for (key, child) in object { shape.merge(jsonShape(child, at: path.isEmpty ? key : path + "." + key)) { $1 } }
    case .array(let array):
        if let first = array.first { shape.merge(jsonShape(first, at: path + "[]")) { $1 } }
    default: break
    }
    return shape
}
