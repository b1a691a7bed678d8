import Testing

// Cases where StagingFS once decided differently from oslo.policy, each with oslo.policy's answer, kept as a table.
@testable import ImportCore

@Suite("Policy: regression table of past disagreements with oslo.policy")
struct PolicyRegressionTests {
    struct Row: CustomStringConvertible {
        var why: String
        var rules: [(String, String)]
        var action = "a"
        var credentials: [(String, PolicyValue)] = [("user_id", .string("u1")), ("project_id", .string("p1")), ("roles", .list([.string("member")]))]
        var target: [(String, PolicyValue)] = []
        /// oslo.policy's decision, a broken rule raising when reached: "allow", "deny" or "error" (StagingFS denies).
        var expected: String

        var policyCase: PolicyCase {
            PolicyCase(
                rules: rules.map { (name: $0.0, text: $0.1) }, action: action,
                credentials: PolicyMapping(credentials.map { .init(key: $0.0, value: $0.1) }),
                target: PolicyMapping(target.map { .init(key: $0.0, value: $0.1) }))
        }

        var description: String { why }
    }

    static func roles(_ names: String...) -> [(String, PolicyValue)] { [("roles", .list(names.map(PolicyValue.string)))] }

    static let rows: [Row] = [
        Row(why: "a rule of white space only is never", rules: [("a", " ")], expected: "error"),
        Row(why: "not rule:UNDEFINED is not default", rules: [("default", ""), ("a", "not rule:nope")], expected: "deny"),
        Row(
            why: "an undefined rule: name falls back to default", rules: [("default", "role:admin"), ("a", "rule:nope")],
            credentials: roles("admin"), expected: "allow"),
        Row(why: "an undefined action falls back to default", rules: [("default", "@")], action: "nope", expected: "allow"),
        Row(why: "without default an undefined action denies", rules: [("b", "@")], action: "nope", expected: "deny"),
        Row(
            why: "a decomposed accent is another string", rules: [("a", "project_id:%(p)s")],
            credentials: [("project_id", .string("caf\u{E9}"))], target: [("p", .string("cafe\u{301}"))], expected: "deny"),
        Row(
            why: "final sigma lower-cases as in Python", rules: [("a", "role:\u{3A3}\u{391}\u{3A3}")],
            credentials: roles("\u{3C3}\u{3B1}\u{3C2}"), expected: "allow"),
        Row(
            why: "a non-final sigma is not final", rules: [("a", "role:\u{3A3}\u{391}\u{3A3}")],
            credentials: roles("\u{3C3}\u{3B1}\u{3C3}"), expected: "deny"),
        Row(why: "the Kelvin sign lower-cases to k", rules: [("a", "role:\u{212A}")], credentials: roles("k"), expected: "allow"),
        Row(
            why: "dotted capital I lower-cases to two code points", rules: [("a", "role:\u{130}")], credentials: roles("i\u{307}"),
            expected: "allow"),
        Row(why: "a stray % is Python's ValueError", rules: [("a", "role:member%")], expected: "error"),
        Row(why: "a substitution on the left is not Python", rules: [("a", "%(x)s:x")], target: [("x", .string("x"))], expected: "error"),
        Row(why: "a path through a string is Python's TypeError", rules: [("a", "user_id.x:1")], expected: "error"),
        Row(why: "a self-reference recurses until Python gives up", rules: [("a", "rule:a")], expected: "error"),
        Row(why: "a cycle through default", rules: [("default", "rule:nope")], action: "x", expected: "error"),
        Row(why: "a whole quoted token is a string, not a check", rules: [("a", "'role:member'")], expected: "error"),
        Row(why: "a broken rule behind a true operand is never reached", rules: [("a", "@ or rule:b"), ("b", "(")], expected: "allow"),
        Row(
            why: "not of a broken rule denies (oslo.policy would read it as ! and allow)", rules: [("a", "not rule:b"), ("b", "admin")],
            expected: "error"),
        Row(why: "True on the left is a literal", rules: [("a", "True:%(flag)s")], target: [("flag", .bool(true))], expected: "allow"),
        Row(why: "a hexadecimal literal on the left", rules: [("a", "0x1f:%(n)s")], target: [("n", .integer(31))], expected: "allow"),
        Row(
            why: "an escaped non-ASCII character in bytes is a SyntaxError (it once trapped StagingFS)", rules: [("a", "rb'\\\u{E9}':x")],
            expected: "error"),
        Row(why: "the same in a plain bytes literal", rules: [("a", "b'\\\u{E9}':x")], expected: "error"),
        Row(why: "a float literal prints as Python's repr", rules: [("a", "1e16:1e+16")], expected: "allow"),
        Row(why: "adjacent string literals join", rules: [("a", "'a''b':ab")], expected: "allow"),
        Row(
            why: "a dotted credential path through a list", rules: [("a", "nested.list.k:p2")],
            credentials: [
                (
                    "nested",
                    .mapping(
                        PolicyMapping([
                            .init(
                                key: "list",
                                value: .list([
                                    .mapping(PolicyMapping([.init(key: "k", value: .string("p1"))])),
                                    .mapping(PolicyMapping([.init(key: "k", value: .string("p2"))])),
                                ]))
                        ]))
                )
            ], expected: "allow"),
        Row(why: "roles: is a generic check, case-sensitive", rules: [("a", "roles:Member")], expected: "deny"),
        Row(why: "roles: matches an item of the list", rules: [("a", "roles:member")], expected: "allow"),
        Row(why: "tenant: is no alias of project_id", rules: [("a", "tenant:p1")], expected: "deny"),
        Row(why: "http: never answers here, and its failure is not false", rules: [("a", "http://127.0.0.1:9/x or @")], expected: "error"),
        Row(
            why: "a missing key in an http: URL is a KeyError, which rule: catches",
            rules: [("a", "not rule:b"), ("b", "http://127.0.0.1:9/%(missing)s")], expected: "allow"),
        Row(why: "CRLF splits", rules: [("a", "role:admin\r\nor\r\nrole:member")], expected: "allow"),
        Row(why: "NBSP and ideographic space split", rules: [("a", "role:admin\u{A0}or\u{3000}role:member")], expected: "allow"),
        Row(why: "a zero-width space does not split", rules: [("a", "role:admin\u{200B}or role:member")], expected: "error"),
        Row(why: "keywords in any case", rules: [("a", "role:x OR role:member")], expected: "allow"),
        Row(why: "and binds tighter than or", rules: [("a", "role:member or role:x and role:y")], expected: "allow"),
        Row(
            why: "a width pads as Python does", rules: [("a", "user_id:%(x)5s")], credentials: [("user_id", .string("   u1"))],
            target: [("x", .string("u1"))], expected: "allow"),
        Row(
            why: "%r is the repr", rules: [("a", "user_id:%(x)r")], credentials: [("user_id", .string("'u1'"))],
            target: [("x", .string("u1"))], expected: "allow"),
        Row(why: "%d of a string is Python's TypeError", rules: [("a", "user_id:%(x)d")], target: [("x", .string("u1"))], expected: "error"),
        Row(why: "a missing target key makes the check false, not an error", rules: [("a", "not user_id:%(missing)s")], expected: "allow"),
        Row(
            why: "roles that are a string are its characters", rules: [("a", "role:A")], credentials: [("roles", .string("abc"))],
            expected: "allow"),
        Row(
            why: "roles that are not strings are Python's AttributeError", rules: [("a", "role:A")],
            credentials: [("roles", .list([.integer(1)]))], expected: "error"),
    ]

    @Test("StagingFS decides each case as oslo.policy did", arguments: rows)
    func stagingFS(row: Row) {
        let verdict = StagingFSVerdict(row.policyCase)
        #expect(verdict.outcome == row.expected, "\(row.why)")
    }

    @Test("the table's answers are the real oslo.policy's")
    func oslo() throws {
        let verdicts = try OsloOracle.decide(Self.rows.map(\.policyCase))
        for (row, verdict) in zip(Self.rows, verdicts) {
            #expect((verdict.strict.hasPrefix("error:") ? "error" : verdict.strict) == row.expected, "\(row.why): \(verdict)")
        }
    }
}
