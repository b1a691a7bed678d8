// The policy engine: a table of rules × identities × targets, the parser's properties, and file reloads.
import Foundation
import Logging
import Testing

@testable import ImportCore

@Suite("Policy rules, table-driven")
struct PolicyTableTests {
    static let identities: [(String, PolicyCredentials)] = [
        ("admin", PolicyCredentials(userID: "a", projectID: "p0", roles: ["admin"])),
        ("member1", PolicyCredentials(userID: "m1", projectID: "p1", roles: ["member"])),
        ("reader1", PolicyCredentials(userID: "r1", projectID: "p1", roles: ["reader"])),
        ("member2", PolicyCredentials(userID: "m2", projectID: "p2", roles: ["Member"])),
        ("nobody", PolicyCredentials(userID: "n", projectID: "p1", roles: [])),
    ]
    static let targets: [[String: String]] = [
        ["project_id": "p1", "owner": "p1", "visibility": "private"],
        ["project_id": "p2", "owner": "p2", "visibility": "public"],
        [:],
    ]
    static let named: [String: PolicyRule] = [
        "context_is_admin": .role("admin"), "cycle_a": .rule("cycle_b"), "cycle_b": .rule("cycle_a"),
    ]

    /// Each rule with the expected answer per identity (rows, in `identities` order) and target (columns).
    static let table: [(rule: String, expected: [String])] = [
        ("", ["TTT", "TTT", "TTT", "TTT", "TTT"]),
        ("@", ["TTT", "TTT", "TTT", "TTT", "TTT"]),
        ("!", ["FFF", "FFF", "FFF", "FFF", "FFF"]),
        ("role:admin", ["TTT", "FFF", "FFF", "FFF", "FFF"]),
        ("role:member", ["TTT", "TTT", "FFF", "TTT", "FFF"]),
        ("role:READER", ["TTT", "TTT", "TTT", "TTT", "FFF"]),
        // Glance's credentials (oslo.context's to_policy_values) carry no is_admin, so this never matches, as in Glance.
        ("is_admin:True", ["FFF", "FFF", "FFF", "FFF", "FFF"]),
        ("project_id:%(project_id)s", ["FFF", "TFF", "TFF", "FTF", "TFF"]),
        ("project_id:%(owner)s and user_id:m1", ["FFF", "TFF", "FFF", "FFF", "FFF"]),
        ("role:member and project_id:%(project_id)s", ["FFF", "TFF", "FFF", "FTF", "FFF"]),
        ("rule:context_is_admin or (role:member and project_id:%(project_id)s)", ["TTT", "TFF", "FFF", "FTF", "FFF"]),
        ("rule:context_is_admin or role:member and project_id:%(project_id)s", ["TTT", "TFF", "FFF", "FTF", "FFF"]),
        ("'public':%(visibility)s", ["FTF", "FTF", "FTF", "FTF", "FTF"]),
        ("role:reader and ('public':%(visibility)s or project_id:%(project_id)s)", ["FTF", "TTF", "TTF", "FTF", "FFF"]),
        ("not role:admin", ["FFF", "TTT", "TTT", "TTT", "TTT"]),
        ("not role:admin or role:reader", ["TTT", "TTT", "TTT", "TTT", "TTT"]),
        ("not (role:admin or role:reader)", ["FFF", "FFF", "FFF", "FFF", "TTT"]),
        ("not role:member and not role:reader", ["FFF", "FFF", "FFF", "FFF", "TTT"]),
        ("rule:undefined_rule", ["FFF", "FFF", "FFF", "FFF", "FFF"]),
        ("rule:cycle_a", ["FFF", "FFF", "FFF", "FFF", "FFF"]),
        ("role:admin or rule:undefined_rule", ["TTT", "FFF", "FFF", "FFF", "FFF"]),
    ]

    @Test("every rule × identity × target case (21 rules × 5 identities × 3 targets)", arguments: table.indices)
    func rule(index: Int) throws {
        let (text, expected) = Self.table[index]
        let rule = try PolicyParser.parse(text)
        let evaluator = PolicyEvaluator(rules: Self.named)
        for (row, (name, credentials)) in Self.identities.enumerated() {
            for (column, target) in Self.targets.enumerated() {
                let want = Array(expected[row])[column] == "T"
                #expect(evaluator.allows(rule, credentials, target) == want, "\(text) for \(name) on \(target)")
            }
        }
    }

    @Test("Glance's defaults: a member uploads to its project's image, not another's; only admins reach the tasks API")
    func glanceDefaults() throws {
        let engine = try PolicyEngine(file: nil, logger: Logger(label: "test"))
        let member = PolicyCredentials(userID: "m", projectID: "p1", roles: ["member"])
        let admin = PolicyCredentials(userID: "a", projectID: "ops", roles: ["admin"])
        let own = ["project_id": "p1", "owner": "p1", "visibility": "shared"]
        let other = ["project_id": "p2", "owner": "p2", "visibility": "private"]
        #expect(engine.enforce("upload_image", credentials: member, target: own).allowed)
        #expect(!engine.enforce("upload_image", credentials: member, target: other).allowed)
        #expect(engine.enforce("add_image", credentials: member, target: ["project_id": "p1", "owner": "p1"]).allowed)
        #expect(!engine.enforce("add_image", credentials: member, target: ["project_id": "p1", "owner": "p2"]).allowed)
        #expect(!engine.enforce("tasks_api_access", credentials: member, target: [:]).allowed)
        #expect(engine.enforce("tasks_api_access", credentials: admin, target: [:]).allowed)
        #expect(engine.enforce("get_task", credentials: member, target: [:]).allowed, "rule:default is open")
        let unknown = engine.enforce("no_such_policy", credentials: member, target: [:])
        #expect(unknown.allowed && unknown.ruleName == "default", "an unknown name falls back to default, as in oslo.policy")
    }
}

@Suite("Policy parser properties")
struct PolicyParserPropertyTests {
    /// A small deterministic generator, so a failure can be reproduced from its seed.
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    static func randomRule(_ random: inout Generator, depth: Int) -> PolicyRule {
        let leaves: [PolicyRule] = [
            .always, .never, .role("admin"), .role("member"), .rule("context_is_admin"),
            .check(kind: "project_id", match: "%(project_id)s"), .check(kind: "'public'", match: "%(visibility)s"),
            .check(kind: "is_admin", match: "True"), .check(kind: "user_id", match: "u1"),
        ]
        guard depth > 0, random.next(3) != 0 else { return leaves[random.next(leaves.count)] }
        switch random.next(3) {
        case 0: return .and((0..<(2 + random.next(2))).map { _ in randomRule(&random, depth: depth - 1) })
        case 1: return .or((0..<(2 + random.next(2))).map { _ in randomRule(&random, depth: depth - 1) })
        default: return .not(randomRule(&random, depth: depth - 1))
        }
    }

    @Test("print then parse gives the same rule, which decides the same for every identity and target")
    func printParseStable() throws {
        var random = Generator(state: 42)
        let evaluator = PolicyEvaluator(rules: PolicyTableTests.named)
        for _ in 0..<2000 {
            let rule = Self.randomRule(&random, depth: 4)
            let reparsed = try PolicyParser.parse(rule.description)
            #expect(reparsed == rule, "\(rule)")
            #expect(try PolicyParser.parse(reparsed.description) == reparsed)
            for (_, credentials) in PolicyTableTests.identities {
                for target in PolicyTableTests.targets {
                    #expect(evaluator.allows(reparsed, credentials, target) == evaluator.allows(rule, credentials, target))
                }
            }
        }
    }

    @Test("random and mutated rule texts never crash; what parses is stable and never allows a caller with nothing")
    func fuzz() {
        var random = Generator(state: 7)
        let pieces = [
            "role:admin", "role:member", "rule:context_is_admin", "project_id:%(project_id)s", "and", "or", "(", ")",
            "is_admin:True", "user_id:%(user_id)s", "role:", ":x", "%(", ")s", "rule:", "AND", "Or", "project_id:", "x",
        ]
        let nothing = PolicyCredentials(userID: nil, projectID: nil, roles: [])
        let evaluator = PolicyEvaluator(rules: PolicyTableTests.named)
        var parsed = 0
        for _ in 0..<20_000 {
            var text = (0..<(1 + random.next(8))).map { _ in pieces[random.next(pieces.count)] }.joined(separator: random.next(4) == 0 ? "" : " ")
            if random.next(3) == 0, !text.isEmpty {  // mutate: drop one character
                text.remove(at: text.index(text.startIndex, offsetBy: random.next(text.count)))
            }
            guard let rule = try? PolicyParser.parse(text) else { continue }
            parsed += 1
            #expect((try? PolicyParser.parse(rule.description)) == rule, "\(text)")
            // Without `@`, quotes or `not`, only a role or a matching credential can allow: a caller without any never passes.
            if !text.contains("@"), !text.lowercased().contains("not"), !text.trimmingCharacters(in: .whitespaces).isEmpty {
                #expect(!evaluator.allows(rule, nothing, ["project_id": "p", "user_id": "u"]), "'\(text)' allowed a caller with nothing")
            }
        }
        #expect(parsed > 1000, "the fuzz must exercise real rules, parsed \(parsed)")
    }

    @Test(
        "malformed rules are refused with a reason",
        arguments: [
            "(role:admin", "role:admin)", "role:admin and", "or role:admin",
            "not", "admin", "role:admin role:member", "()",
        ])
    func malformed(text: String) {
        #expect(throws: PolicyParseError.self) { try PolicyParser.parse(text) }
    }
}

@Suite("Policy files")
struct PolicyFileTests {
    func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test("YAML and JSON files override the defaults name by name")
    func formats() throws {
        let directory = NSTemporaryDirectory() + "policy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let member = PolicyCredentials(userID: "m", projectID: "p1", roles: ["member"])
        try write("# comment\n\"tasks_api_access\": \"role:member\"\n", to: directory + "/policy.yaml")
        try write("{\"upload_image\": \"!\"}", to: directory + "/policy.json")
        let yaml = try PolicyEngine(file: directory + "/policy.yaml", logger: Logger(label: "test"))
        #expect(yaml.enforce("tasks_api_access", credentials: member, target: [:]).allowed)
        #expect(yaml.enforce("upload_image", credentials: member, target: ["project_id": "p1"]).allowed, "other names keep their defaults")
        let json = try PolicyEngine(file: directory + "/policy.json", logger: Logger(label: "test"))
        #expect(!json.enforce("upload_image", credentials: member, target: ["project_id": "p1"]).allowed)
    }

    @Test("a broken file at start-up names the file, line and reason")
    func brokenAtStart() throws {
        let path = NSTemporaryDirectory() + "policy-\(UUID().uuidString).yaml"
        try write("\"get_image\": \"\"\n\"upload_image\": \"role:member and (project_id:%(project_id)s\"\n", to: path)
        #expect {
            _ = try PolicyEngine(file: path, logger: Logger(label: "test"))
        } throws: { error in
            String(describing: error).contains("\(path):2") && String(describing: error).contains("upload_image")
        }
    }

    @Test("a changed file is reloaded; a broken rule denies while the good ones apply, so a revocation is never lost")
    func reload() throws {
        let path = NSTemporaryDirectory() + "policy-\(UUID().uuidString).yaml"
        try write("\"upload_image\": \"role:member\"\n", to: path)
        let engine = try PolicyEngine(file: path, logger: Logger(label: "test"))
        let member = PolicyCredentials(userID: "m", projectID: "p1", roles: ["member"])
        #expect(engine.enforce("upload_image", credentials: member, target: [:]).allowed)
        usleep(1_100_000)
        try write("\"upload_image\": \"role:admin\"\n", to: path)
        #expect(!engine.enforce("upload_image", credentials: member, target: [:]).allowed, "reloaded")
        usleep(1_100_000)
        try write("\"upload_image\": \"role:member and (\"\n\"get_task\": \"!\"\n", to: path)
        let decision = engine.enforce("upload_image", credentials: member, target: [:])
        #expect(!decision.allowed && decision.ruleText == "role:member and (" && decision.error?.contains("does not parse") == true)
        #expect(!engine.enforce("get_task", credentials: member, target: [:]).allowed, "the revocation beside the typo applies")
        #expect(engine.enforce("get_tasks", credentials: member, target: [:]).allowed, "names the file no longer sets are defaults again")
        usleep(1_100_000)
        try write("upload_image: [unclosed\n", to: path)
        let unusable = engine.enforce("get_tasks", credentials: member, target: [:])
        #expect(!unusable.allowed && unusable.error != nil, "a file that is not YAML denies everything until it is fixed")
    }
}
