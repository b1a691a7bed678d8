// Names and project ids compared as the kernel, ext4, SQLite and PostgreSQL compare them: byte for byte.
//
// Swift's `String` equality is canonical equivalence: a precomposed and a decomposed accent, or KELVIN SIGN and
// `K`, are equal strings although they are different names on disk. A `[String: …]` keyed by names would let two
// distinct files (of two projects) share a record, a handle or a quota entry; these types never do.

/// Text that equals other text only when their UTF-8 bytes are the same.
public struct ExactText: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (lhs: ExactText, rhs: ExactText) -> Bool {
        lhs.text.utf8.elementsEqual(rhs.text.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(text.utf8.count)
        for byte in text.utf8 { hasher.combine(byte) }
    }

    public var description: String { text }

    /// Whether two optional ids (projects, owners) are present and the same bytes.
    public static func same(_ lhs: String?, _ rhs: String?) -> Bool {
        guard let lhs, let rhs else { return false }
        return ExactText(lhs) == ExactText(rhs)
    }
}

/// A dictionary whose keys are names, compared as bytes (`ExactText`), used with plain `String` names.
struct NameTable<Value> {
    private var entries: [ExactText: Value] = [:]

    init() {}

    subscript(name: String) -> Value? {
        get { entries[ExactText(name)] }
        set { entries[ExactText(name)] = newValue }
    }

    @discardableResult
    mutating func removeValue(forKey name: String) -> Value? {
        entries.removeValue(forKey: ExactText(name))
    }

    var names: [String] { entries.keys.map(\.text) }
    var values: Dictionary<ExactText, Value>.Values { entries.values }
}

extension NameTable: Sendable where Value: Sendable {}

/// A set of names compared as bytes.
struct NameSet {
    private var members: Set<ExactText>

    init(_ names: some Sequence<String>) { members = Set(names.map(ExactText.init)) }

    func contains(_ name: String) -> Bool { members.contains(ExactText(name)) }
}
