// Parses oslo.policy rule text: checks, `and`, `or`, `not`, parentheses, with oslo.policy's precedence.

/// Why a rule's text cannot be a rule.
public struct PolicyParseError: Error, Equatable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// `not` binds tighter than `and`, which binds tighter than `or`; `""` and `@` allow, `!` denies.
public enum PolicyParser {
    public static func parse(_ text: String) throws(PolicyParseError) -> PolicyRule {
        let tokens = try tokenize(text)
        if tokens.isEmpty { return .always }
        var position = 0
        let rule = try parseOr(tokens, &position)
        guard position == tokens.count else {
            throw PolicyParseError(reason: "unexpected '\(tokens[position])' after a complete rule")
        }
        return rule
    }

    /// Splits on white space; parentheses at the start and end of a word are tokens of their own (as oslo.policy's
    /// tokenizer does: a `%(key)s` substitution ends in `s`, so trailing parentheses always close groups).
    static func tokenize(_ text: String) throws(PolicyParseError) -> [String] {
        var tokens: [String] = []
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }) {
            let opening = word.prefix { $0 == "(" }.count
            let rest = word.dropFirst(opening)
            let closing = rest.reversed().prefix { $0 == ")" }.count
            tokens += Array(repeating: "(", count: opening)
            if rest.count > closing { tokens.append(String(rest.dropLast(closing))) }
            tokens += Array(repeating: ")", count: closing)
        }
        return tokens
    }

    private static func parseOr(_ tokens: [String], _ position: inout Int) throws(PolicyParseError) -> PolicyRule {
        try parseChain("or", tokens, &position, operand: parseAnd, combine: PolicyRule.or)
    }

    private static func parseAnd(_ tokens: [String], _ position: inout Int) throws(PolicyParseError) -> PolicyRule {
        try parseChain("and", tokens, &position, operand: parseNot, combine: PolicyRule.and)
    }

    /// `operand (keyword operand)*`: one operand alone stays itself.
    private static func parseChain(
        _ keyword: String, _ tokens: [String], _ position: inout Int,
        operand: ([String], inout Int) throws(PolicyParseError) -> PolicyRule, combine: ([PolicyRule]) -> PolicyRule
    ) throws(PolicyParseError) -> PolicyRule {
        var rules = [try operand(tokens, &position)]
        while position < tokens.count, tokens[position].lowercased() == keyword {
            position += 1
            rules.append(try operand(tokens, &position))
        }
        return rules.count == 1 ? rules[0] : combine(rules)
    }

    private static func parseNot(_ tokens: [String], _ position: inout Int) throws(PolicyParseError) -> PolicyRule {
        guard position < tokens.count else { throw PolicyParseError(reason: "the rule ends where a check was expected") }
        if tokens[position].lowercased() == "not" {
            position += 1
            return .not(try parseNot(tokens, &position))
        }
        return try parseAtom(tokens, &position)
    }

    private static func parseAtom(_ tokens: [String], _ position: inout Int) throws(PolicyParseError) -> PolicyRule {
        let token = tokens[position]
        position += 1
        if token == "(" {
            let inner = try parseOr(tokens, &position)
            guard position < tokens.count, tokens[position] == ")" else { throw PolicyParseError(reason: "a '(' is never closed") }
            position += 1
            return inner
        }
        return try check(token)
    }

    static func check(_ token: String) throws(PolicyParseError) -> PolicyRule {
        switch token.lowercased() {
        case "@": return .always
        case "!": return .never
        case ")": throw PolicyParseError(reason: "a ')' closes nothing")
        case "and", "or": throw PolicyParseError(reason: "'\(token)' has nothing on its left")
        default: break
        }
        guard let colon = token.firstIndex(of: ":"), colon != token.startIndex, token.index(after: colon) != token.endIndex else {
            throw PolicyParseError(reason: "'\(token)' is not a check: expected kind:match, e.g. role:admin or rule:default")
        }
        let kind = String(token[..<colon]), match = String(token[token.index(after: colon)...])
        switch kind {
        case "role": return .role(match)
        case "rule": return .rule(match)
        default: return .check(kind: kind, match: match)
        }
    }
}
