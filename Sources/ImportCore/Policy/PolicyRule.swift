// oslo.policy's rule language: a parsed rule and its text as oslo.policy prints it.

/// A policy rule, as oslo.policy's parser builds it.
public indirect enum PolicyRule: Sendable, Equatable, CustomStringConvertible {
    /// `""` or `@`: always allowed.
    case always
    /// `!`: never allowed.
    case never
    /// `role:NAME`: the caller has the role (both sides lower-cased as Python does).
    case role(String)
    /// `rule:NAME`: another named rule; an undefined name falls back to `default`.
    case rule(String)
    /// `kind:match`: a credential path or a Python literal on the left, compared with the `%`-formatted right side.
    case check(kind: String, match: String)
    /// `http:…` / `https:…`: oslo.policy would call out to that URL; StagingFS never does, so reaching one denies.
    case external(kind: String, match: String)
    case and([PolicyRule])
    case or([PolicyRule])
    case not(PolicyRule)

    /// oslo.policy's `str()` of the rule: parsing it gives back the same rule.
    public var description: String {
        switch self {
        case .always: return "@"
        case .never: return "!"
        case let .role(name): return "role:\(name)"
        case let .rule(name): return "rule:\(name)"
        case let .check(kind, match), let .external(kind, match): return "\(kind):\(match)"
        case let .and(rules): return "(" + rules.map(\.description).joined(separator: " and ") + ")"
        case let .or(rules): return "(" + rules.map(\.description).joined(separator: " or ") + ")"
        case let .not(rule): return "not \(rule)"
        }
    }
}

/// Why oslo.policy would not understand a rule's text (it logs and fails closed); StagingFS denies the rule.
public enum PolicyParseError: Error, Equatable, CustomStringConvertible {
    /// The tokens do not reduce to one rule (unbalanced parentheses, a dangling `and`, two checks in a row, …).
    case notUnderstood
    /// Nothing but white space: oslo.policy cannot parse it (only `""` means always).
    case onlyWhiteSpace
    /// A token with no `:` (other than `@` and `!`).
    case notACheck(String)
    /// A whole token in quotes is a string, never a check.
    case quoted(String)
    /// Nesting (parentheses, `not`, `and`/`or`) deeper than StagingFS evaluates.
    case tooDeep(limit: Int)
    /// More tokens than StagingFS parses.
    case tooLong(limit: Int)
    /// A value in the policy file that is not a string (oslo.policy would read `~`, `false` or `[]` as always).
    case notText(String)

    public var reason: String {
        switch self {
        case .notUnderstood: return "the rule does not parse (check the parentheses and the and/or/not between checks)"
        case .onlyWhiteSpace: return "the rule is only white space (write \"\" for always or \"!\" for never)"
        case let .notACheck(token): return "'\(token)' is not a check: expected kind:match, e.g. role:admin or rule:default"
        case let .quoted(token): return "'\(token)' is a quoted string, not a check"
        case let .tooDeep(limit): return "the rule nests deeper than \(limit) levels"
        case let .tooLong(limit): return "the rule has more than \(limit) words and parentheses"
        case let .notText(kind): return "the rule is \(kind), not a string (write \"\" for always or \"!\" for never)"
        }
    }

    public var description: String { reason }
}
