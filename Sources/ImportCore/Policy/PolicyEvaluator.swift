// Evaluates parsed rules as oslo.policy's checks do: order, short-circuits, fallbacks, and the errors that deny.

/// Why a decision was denied without oslo.policy answering false: what it raises on, or what StagingFS will not evaluate.
public enum PolicyEvaluationError: Error, Equatable, CustomStringConvertible {
    /// The decision reached a rule that does not parse.
    case brokenRule(name: String, error: PolicyParseError)
    /// A rule that refers back to itself (oslo.policy recurses until Python's stack runs out).
    case cycle(name: String)
    /// Nesting and `rule:` references deeper than StagingFS follows.
    case tooDeep(limit: Int)
    /// `%` formatting of the right side failed with something other than a missing key (Python's ValueError/TypeError).
    case badFormat(String)
    /// The left side of a check is not valid Python (`ast.literal_eval` raises SyntaxError).
    case badKind(String)
    /// A dotted credential path goes through a value that is not a mapping (Python's TypeError).
    case notMapping(String)
    /// The credentials' roles are not a collection of strings.
    case badRoles(String)
    /// `http:`/`https:` checks call a remote server in oslo.policy; StagingFS calls none.
    case external(String)
    /// An `http:`/`https:` URL names a target key that is missing: Python's KeyError, which the nearest enclosing
    /// `rule:` reference catches (that reference is then false).
    case externalMissingKey(String)
    /// Python would decide this, but StagingFS does not reproduce it exactly (see docs/policy.md).
    case unsupported(String)

    public var description: String {
        switch self {
        case let .brokenRule(name, error): return "rule '\(name)' does not parse: \(error.reason)"
        case let .cycle(name): return "rule '\(name)' refers back to itself"
        case let .tooDeep(limit): return "rules nest deeper than \(limit) levels"
        case let .badFormat(reason): return "a %(…)s substitution fails: \(reason)"
        case let .badKind(reason): return "the left side of a check is not valid Python: \(reason)"
        case let .notMapping(path): return "credential path '\(path)' goes through a value that is not a mapping"
        case let .badRoles(reason): return "the credentials' roles cannot be read: \(reason)"
        case let .external(check): return "'\(check)' would call a remote server; StagingFS does not"
        case let .externalMissingKey(key): return "an http(s): check names the missing target key '\(key)'"
        case let .unsupported(reason): return "not evaluated (denied): \(reason)"
        }
    }
}

/// Named rules, keyed by code points as a Python dict is; a name whose text does not parse keeps its error.
public struct PolicyRules: Sendable {
    public enum Entry: Sendable, Equatable {
        case rule(PolicyRule)
        case broken(PolicyParseError)
    }

    private var entries: [[UInt32]: Entry] = [:]

    public init() {}

    public init(_ rules: [String: PolicyRule]) {
        for (name, rule) in rules { self[name] = .rule(rule) }
    }

    public subscript(name: String) -> Entry? {
        get { entries[name.unicodeScalars.map(\.value)] }
        set { entries[name.unicodeScalars.map(\.value)] = newValue }
    }
}

/// One evaluation: oslo.policy's `_check` over a rule tree, with its fallbacks and its failures.
struct PolicyEvaluator {
    /// How deep evaluation goes (rule nesting plus `rule:` hops): well inside the depth at which Python's recursion
    /// limit stops oslo.policy, so up to here both decide alike.
    static let maximumDepth = 128
    private static let maximumPathSegments = 64

    /// Undefined `rule:` names are logged once, when the rules are loaded (PolicyEngine), not per decision.
    let rules: PolicyRules

    init(rules: PolicyRules) { self.rules = rules }

    init(rules: [String: PolicyRule]) { self.init(rules: PolicyRules(rules)) }

    /// Whether the rule allows; anything that would make oslo.policy raise denies.
    func allows(_ rule: PolicyRule, _ credentials: PolicyCredentials, _ target: [String: String]) -> Bool {
        (try? decide(rule, named: nil, credentials: credentials.mapping, target: PolicyMapping(strings: target))) ?? false
    }

    /// The decision for `rule`, evaluated as the rule called `name` (nil: an anonymous rule).
    func decide(
        _ rule: PolicyRule, named name: String?, credentials: PolicyMapping, target: PolicyMapping
    )
        throws(PolicyEvaluationError) -> Bool
    {
        var visiting = name.map { [$0] } ?? []
        return try evaluate(rule, credentials, target, &visiting, depth: 1)
    }

    private func evaluate(
        _ rule: PolicyRule, _ credentials: PolicyMapping, _ target: PolicyMapping, _ visiting: inout [String],
        depth: Int
    ) throws(PolicyEvaluationError) -> Bool {
        guard depth <= Self.maximumDepth else { throw .tooDeep(limit: Self.maximumDepth) }
        switch rule {
        case .always: return true
        case .never: return false
        case let .not(inner): return !(try evaluate(inner, credentials, target, &visiting, depth: depth + 1))
        case let .and(rules):
            for inner in rules where !(try evaluate(inner, credentials, target, &visiting, depth: depth + 1)) { return false }
            return true
        case let .or(rules):
            for inner in rules where try evaluate(inner, credentials, target, &visiting, depth: depth + 1) { return true }
            return false
        case let .rule(name):
            var resolved = name
            var entry = rules[name]
            if entry == nil {
                resolved = "default"
                entry = rules[resolved]
            }
            guard let entry else { return false }
            // Evaluation is deterministic, so re-entering a rule would recurse forever: oslo.policy fails with RecursionError.
            if visiting.contains(where: { PythonText.equal($0, resolved) }) { throw .cycle(name: resolved) }
            switch entry {
            case let .broken(error): throw .brokenRule(name: resolved, error: error)
            case let .rule(referenced):
                visiting.append(resolved)
                defer { visiting.removeLast() }
                do throws(PolicyEvaluationError) {
                    return try evaluate(referenced, credentials, target, &visiting, depth: depth + 1)
                } catch .externalMissingKey {
                    return false  // oslo.policy's RuleCheck catches any KeyError from the rule it refers to
                }
            }
        case let .role(match):
            guard let wanted = try Self.format(match, target) else { return false }
            guard let roles = credentials["roles"] else { return false }
            let lowered = PythonText.lower(wanted)
            return try Self.roleNames(roles).contains { PythonText.equal(PythonText.lower($0), lowered) }
        case let .check(kind, match):
            guard let wanted = try Self.format(match, target) else { return false }
            switch PythonLiteral.classify(kind) {
            case let .literal(value): return PythonText.equal(wanted, value)
            case let .syntaxError(reason): throw .badKind(reason)
            case let .unsupported(reason): throw .unsupported(reason)
            case let .path(segments):
                guard segments.count <= Self.maximumPathSegments else { throw .unsupported("a credential path of more than 64 names") }
                return try Self.find(.mapping(credentials), segments[...], wanted, kind)
            }
        case let .external(kind, match):
            switch PythonFormat.apply(match, target) {
            case let .missingKey(key): throw .externalMissingKey(key)
            case let .error(reason): throw .badFormat(reason)
            case let .unsupported(reason): throw .unsupported(reason)
            case .text: throw .external("\(kind):\(match)")
            }
        }
    }

    /// `match % target`: nil for a missing key (the check is false).
    private static func format(_ match: String, _ target: PolicyMapping) throws(PolicyEvaluationError) -> String? {
        switch PythonFormat.apply(match, target) {
        case let .text(text): return text
        case .missingKey: return nil
        case let .error(reason): throw .badFormat(reason)
        case let .unsupported(reason): throw .unsupported(reason)
        }
    }

    /// What Python iterates in `creds['roles']`: list items (which must be strings), a string's characters, a dict's keys.
    private static func roleNames(_ roles: PolicyValue) throws(PolicyEvaluationError) -> [String] {
        switch roles {
        case let .list(items):
            var names: [String] = []
            for item in items {
                guard case let .string(name) = item else { throw .badRoles("a role that is not a string") }
                names.append(name)
            }
            return names
        case let .string(text): return text.unicodeScalars.map { String($0) }
        case let .mapping(mapping): return mapping.entries.map(\.key)
        case .null, .integer, .bool: throw .badRoles("roles is not a list")
        }
    }

    /// oslo.policy's `_find_in_dict`: follow the keys; a list matches when any item does.
    private static func find(
        _ value: PolicyValue, _ path: ArraySlice<String>, _ wanted: String, _ kind: String
    )
        throws(PolicyEvaluationError) -> Bool
    {
        guard let key = path.first else {
            guard let text = value.pythonString else { throw .unsupported("str() of a value with non-ASCII text inside") }
            return PythonText.equal(wanted, text)
        }
        guard case let .mapping(mapping) = value else { throw .notMapping(kind) }
        guard let next = mapping[key] else { return false }
        if case let .list(items) = next {
            for item in items where try find(item, path.dropFirst(), wanted, kind) { return true }
            return false
        }
        return try find(next, path.dropFirst(), wanted, kind)
    }
}
