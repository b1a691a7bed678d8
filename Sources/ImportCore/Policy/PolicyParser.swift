// Parses oslo.policy rule text: its tokenizer and its greedy shift-reduce parser, without recursion.

/// Turns rule text into a rule exactly as oslo.policy's `_parser` does, or says why oslo.policy would not understand it.
public enum PolicyParser {
    /// How deep a rule may nest (parentheses, `not`, `and`/`or`): far inside what oslo.policy evaluates, and bounded so
    /// that evaluation never exhausts the stack.
    public static let maximumDepth = 64
    /// How many tokens a rule may have: the reduction copies operand lists, so this keeps a hostile file's parse short.
    public static let maximumTokens = 4096

    /// A parsed piece and how deep it nests.
    struct Node {
        var rule: PolicyRule
        var depth: Int
    }

    enum Token {
        case open, close, and, or, not
        case string(String)
        case check(Node)
        case andExpression([Node])
        case orExpression([Node])
    }

    public static func parse(_ text: String) throws(PolicyParseError) -> PolicyRule {
        if text.isEmpty { return .always }
        var stack: [Token] = []
        var openParentheses = 0
        let tokens = try tokenize(text)
        if tokens.count > maximumTokens { throw .tooLong(limit: maximumTokens) }
        for token in tokens {
            if case .open = token { openParentheses += 1 }
            if case .close = token { openParentheses -= 1 }
            if openParentheses > maximumDepth { throw .tooDeep(limit: maximumDepth) }
            stack.append(token)
            try reduce(&stack)
        }
        if stack.isEmpty { throw .onlyWhiteSpace }
        guard stack.count == 1 else {
            if let quoted = stack.lazy.compactMap({ token -> String? in if case let .string(text) = token { text } else { nil } }).first {
                throw .quoted(quoted)
            }
            throw .notUnderstood
        }
        switch stack[0] {
        case let .check(node): return node.rule
        case let .andExpression(nodes): return try combined(PolicyRule.and, nodes).rule
        case let .orExpression(nodes): return try combined(PolicyRule.or, nodes).rule
        case let .string(text): throw .quoted(text)
        default: throw .notUnderstood
        }
    }

    /// Splits on Python white space; leading `(` and trailing `)` of a word are tokens of their own, `and`/`or`/`not`
    /// are keywords in any case, a word in matching quotes is a string, anything else a check.
    static func tokenize(_ text: String) throws(PolicyParseError) -> [Token] {
        var tokens: [Token] = []
        var words: [[Unicode.Scalar]] = [[]]
        for scalar in text.unicodeScalars {
            if PythonText.isSpace(scalar) { words.append([]) } else { words[words.count - 1].append(scalar) }
        }
        for word in words where !word.isEmpty {
            let opening = word.prefix { $0 == "(" }.count
            tokens += Array(repeating: .open, count: opening)
            let rest = Array(word[opening...])
            guard !rest.isEmpty else { continue }
            let closing = rest.reversed().prefix { $0 == ")" }.count
            let clean = String(String.UnicodeScalarView(rest[..<(rest.count - closing)]))
            let lowered = PythonText.lower(clean)
            if let keyword = ["and": Token.and, "or": .or, "not": .not].first(where: { PythonText.equal($0.key, lowered) })?.value {
                tokens.append(keyword)
            } else if clean.isEmpty {
                // only closing parentheses
            } else if rest.count >= 2, rest.first == rest.last, rest.first == "'" || rest.first == "\"" {
                tokens.append(.string(String(String.UnicodeScalarView(rest.dropFirst().dropLast()))))
            } else {
                tokens.append(.check(Node(rule: try check(clean), depth: 1)))
            }
            tokens += Array(repeating: .close, count: closing)
        }
        return tokens
    }

    /// One check token: `@`, `!`, or `kind:match` split at the first colon.
    static func check(_ token: String) throws(PolicyParseError) -> PolicyRule {
        if token == "!" { return .never }
        if token == "@" { return .always }
        guard let colon = token.unicodeScalars.firstIndex(of: ":") else { throw .notACheck(token) }
        let kind = String(token.unicodeScalars[..<colon])
        let match = String(token.unicodeScalars[token.unicodeScalars.index(after: colon)...])
        switch Array(kind.unicodeScalars) {
        case Array("http".unicodeScalars), Array("https".unicodeScalars): return .external(kind: kind, match: match)
        case Array("rule".unicodeScalars): return .rule(match)
        case Array("role".unicodeScalars): return .role(match)
        default: return .check(kind: kind, match: match)
        }
    }

    // MARK: reduction

    /// oslo.policy's greedy reduction: after each token, apply the first pattern that matches the top of the stack.
    private static func reduce(_ stack: inout [Token]) throws(PolicyParseError) {
        while true {
            let count = stack.count
            if count >= 3, let reduced = try reduceThree(stack[count - 3], stack[count - 2], stack[count - 1]) {
                stack.removeLast(3)
                stack.append(reduced)
            } else if count >= 2, case .not = stack[count - 2], case let .check(node) = stack[count - 1] {
                stack.removeLast(2)
                stack.append(.check(try checked(Node(rule: .not(node.rule), depth: node.depth + 1))))
            } else {
                return
            }
        }
    }

    private static func reduceThree(_ first: Token, _ second: Token, _ third: Token) throws(PolicyParseError) -> Token? {
        switch (first, second, third) {
        case let (.open, .check(node), .close): return .check(node)
        case let (.open, .andExpression(nodes), .close): return .check(try combined(PolicyRule.and, nodes))
        case let (.open, .orExpression(nodes), .close): return .check(try combined(PolicyRule.or, nodes))
        case let (.check(left), .and, .check(right)): return .andExpression(try expression([left, right]))
        case let (.andExpression(nodes), .and, .check(right)): return .andExpression(try expression(nodes + [right]))
        case (.orExpression(var nodes), .and, .check(let right)):
            // `a or b and c`: the `and` takes the or's last operand, extending it when it is already an `and`.
            let last = nodes.removeLast()
            if case let .and(rules) = last.rule {
                nodes.append(try checked(Node(rule: .and(rules + [right.rule]), depth: max(last.depth, right.depth + 1))))
            } else {
                nodes.append(try combined(PolicyRule.and, [last, right]))
            }
            return .orExpression(try expression(nodes))
        case let (.check(left), .or, .check(right)): return .orExpression(try expression([left, right]))
        case let (.andExpression(nodes), .or, .check(right)):
            return .orExpression(try expression([try combined(PolicyRule.and, nodes), right]))
        case let (.orExpression(nodes), .or, .check(right)): return .orExpression(try expression(nodes + [right]))
        default: return nil
        }
    }

    /// Operands of an `and`/`or` whose node would still be within the depth bound.
    private static func expression(_ nodes: [Node]) throws(PolicyParseError) -> [Node] {
        _ = try combined(PolicyRule.and, nodes)
        return nodes
    }

    private static func combined(_ make: ([PolicyRule]) -> PolicyRule, _ nodes: [Node]) throws(PolicyParseError) -> Node {
        try checked(Node(rule: make(nodes.map(\.rule)), depth: (nodes.map(\.depth).max() ?? 0) + 1))
    }

    private static func checked(_ node: Node) throws(PolicyParseError) -> Node {
        guard node.depth <= maximumDepth else { throw .tooDeep(limit: maximumDepth) }
        return node
    }
}
