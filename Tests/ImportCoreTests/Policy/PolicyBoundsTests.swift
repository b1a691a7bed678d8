// Hostile nesting and the scope check: bounded with a clear error, never a crash.
import Foundation
import Logging
import Testing

@testable import ImportCore

@Suite("Policy: bounds and scope")
struct PolicyBoundsTests {
    let member = PolicyCredentials(userID: "m", projectID: "p1", roles: ["member"])

    static let hostile: [String: String] = [
        "100,000 parentheses": String(repeating: "(", count: 100_000) + "@" + String(repeating: ")", count: 100_000),
        "100,000 nots": String(repeating: "not ", count: 100_000) + "@",
        "5,000 ands": Array(repeating: "@", count: 5000).joined(separator: " and "),
    ]

    @Test(
        "deep parentheses, not chains and long and-chains are refused with the bound, not a crash",
        arguments: hostile.keys.sorted())
    func deepText(name: String) {
        #expect {
            _ = try PolicyParser.parse(Self.hostile[name]!)
        } throws: { error in
            String(describing: error).contains("deeper than") || String(describing: error).contains("more than")
        }
    }

    @Test("nesting up to the bound parses and decides")
    func atTheBound() throws {
        let depth = PolicyParser.maximumDepth - 1
        let rule = try PolicyParser.parse(String(repeating: "not ", count: depth) + "!")
        let evaluator = PolicyEvaluator(rules: [:])
        #expect(evaluator.allows(rule, member, [:]) == (depth % 2 == 1))
    }

    @Test("a rule: chain longer than the evaluation bound denies with the bound in the decision")
    func longChain() throws {
        var rules = PolicyRules()
        for index in 0..<1000 { rules["r\(index)"] = .rule(.rule("r\(index + 1)")) }
        rules["r1000"] = .rule(.always)
        let (_, result) = PolicyEngine.decide("r0", rules: rules, credentials: member.mapping, target: PolicyMapping(), scopeTypes: nil)
        #expect(result == .failure(.tooDeep(limit: PolicyEvaluator.maximumDepth)))
        let (_, short) = PolicyEngine.decide("r990", rules: rules, credentials: member.mapping, target: PolicyMapping(), scopeTypes: nil)
        #expect(short == .success(true))
    }

    @Test("a file with a rule nested too deep names the file, line, rule and bound at start-up")
    func deepFile() throws {
        let path = NSTemporaryDirectory() + "policy-\(UUID().uuidString).yaml"
        try ("\"get_image\": \"\"\n\"upload_image\": \"" + String(repeating: "(", count: 500) + "@" + String(repeating: ")", count: 500) + "\"\n")
            .write(toFile: path, atomically: false, encoding: .utf8)
        #expect {
            _ = try PolicyEngine(file: path, logger: Logger(label: "test"))
        } throws: { error in
            let text = String(describing: error)
            return text.contains("\(path):2") && text.contains("upload_image") && text.contains("deeper than 64")
        }
    }

    @Test("Glance's project scope: a system-scoped or domain-scoped token is refused where the default says project")
    func scope() {
        var credentials = member.mapping
        let target = PolicyMapping(strings: ["project_id": "p1"])
        let rules = PolicyRules(["upload_image": .always])
        #expect(PolicyEngine.decide("upload_image", rules: rules, credentials: credentials, target: target, scopeTypes: ["project"]).1 == .success(true))
        credentials["system_scope"] = .string("all")
        #expect(PolicyEngine.decide("upload_image", rules: rules, credentials: credentials, target: target, scopeTypes: ["project"]).1 == .success(false))
        #expect(PolicyEngine.decide("upload_image", rules: rules, credentials: credentials, target: target, scopeTypes: nil).1 == .success(true))
        var domain = member.mapping
        domain["domain_id"] = .string("d1")
        #expect(PolicyEngine.decide("upload_image", rules: rules, credentials: domain, target: target, scopeTypes: ["project"]).1 == .success(false))
    }

    @Test("the oracle runs the Python whose Unicode database StagingFS reproduces")
    func unicodeVersion() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: OsloOracle.python)
        process.arguments = ["-c", "import unicodedata; print(unicodedata.unidata_version)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let version = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let expected = "\(PythonText.unicodeVersion.major).\(PythonText.unicodeVersion.minor)"
        #expect(version.hasPrefix(expected + "."), "oslo.policy's Python has Unicode \(version); StagingFS reproduces \(expected)")
    }

    @Test("random text as a check's left and right sides never traps: every case ends in a decision or an error")
    func noTrap() {
        var generator = PolicyCaseGenerator(seed: 99)
        var decided = 0
        for _ in 0..<8000 {
            var policyCase = generator.policyCase()
            policyCase.rules.append((name: "z", text: generator.noise() + ":" + generator.noise()))
            policyCase.action = "z"
            _ = StagingFSVerdict(policyCase)
            decided += 1
        }
        #expect(decided == 8000)
    }
}
