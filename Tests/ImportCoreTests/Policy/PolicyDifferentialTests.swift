// The differential test: thousands of random cases decided by the real oslo.policy and by StagingFS must agree.
import Foundation
import Testing

@testable import ImportCore

/// StagingFS's side of a case, in the oracle's terms.
struct StagingFSVerdict {
    /// Names whose text does not parse (as oslo.policy would log), leaving out those refused only for depth or length.
    var broken: Set<[UInt32]>
    /// "allow", "deny" or "error".
    var outcome: String
    /// Set when StagingFS denied by a documented choice of its own (unsupported construct, depth or length bound).
    var deliberate: String?

    init(_ policyCase: PolicyCase) {
        var rules = PolicyRules()
        var bounded: Set<[UInt32]> = []
        var broken: Set<[UInt32]> = []
        for (name, text) in policyCase.rules {
            let key = name.unicodeScalars.map(\.value)
            broken.remove(key)
            bounded.remove(key)
            do throws(PolicyParseError) { rules[name] = .rule(try PolicyParser.parse(text)) } catch {
                rules[name] = .broken(error)
                if case .tooDeep = error { bounded.insert(key) } else if case .tooLong = error { bounded.insert(key) } else { broken.insert(key) }
            }
        }
        self.broken = broken
        let (_, result) = PolicyEngine.decide(
            policyCase.action, rules: rules, credentials: policyCase.credentials,
            target: policyCase.target, scopeTypes: nil)
        switch result {
        case let .success(allowed): outcome = allowed ? "allow" : "deny"
        case let .failure(error):
            outcome = "error"
            switch error {
            case .unsupported, .tooDeep: deliberate = "\(error)"
            case let .brokenRule(name, _) where bounded.contains(name.unicodeScalars.map(\.value)): deliberate = "\(error)"
            default: break
            }
        }
        if deliberate == nil, !bounded.isEmpty { deliberate = "a rule beyond the depth or length bound" }
    }

    /// The same decision and the same broken rules as oslo.policy (any exception there is an error here).
    func agrees(with oslo: OsloVerdict) -> Bool {
        let osloOutcome = oslo.strict.hasPrefix("error:") ? "error" : oslo.strict
        return broken == oslo.broken && outcome == osloOutcome
    }
}

@Suite("Policy: differential against the real oslo.policy")
struct PolicyDifferentialTests {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    @Test("random rules, credentials and targets: StagingFS decides every case as oslo.policy does")
    func differential() throws {
        let seed = Self.environment["STAGINGFS_POLICY_DIFF_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        let seconds = Self.environment["STAGINGFS_POLICY_DIFF_SECONDS"].flatMap { Double($0) } ?? 45
        var generator = PolicyCaseGenerator(seed: seed)
        let deadline = Date().addingTimeInterval(seconds)
        var total = 0, disagreements = 0, deliberate = 0, brokenDenials = 0, allowed = 0, errors = 0
        var reasons: [String: Int] = [:]
        print("policy differential: seed \(seed) (set STAGINGFS_POLICY_DIFF_SEED to repeat), \(seconds) s")
        repeat {
            let cases = (0..<400).map { _ in generator.policyCase() }
            let verdicts = try OsloOracle.decide(cases)
            for (policyCase, oslo) in zip(cases, verdicts) {
                total += 1
                let ours = StagingFSVerdict(policyCase)
                if ours.outcome == "allow" { allowed += 1 }
                if ours.deliberate != nil {
                    deliberate += 1
                    reasons[String(ours.deliberate!.prefix(60)), default: 0] += 1
                    #expect(ours.outcome != "allow")
                    continue
                }
                if oslo.strict.hasPrefix("error:") { errors += 1 }
                if oslo.raw == "allow", oslo.strict != "allow" { brokenDenials += 1 }
                guard !ours.agrees(with: oslo) else { continue }
                disagreements += 1
                if disagreements <= 20 {
                    Issue.record(
                        "disagreement (seed \(seed)): oslo \(oslo), StagingFS \(ours.outcome) broken \(ours.broken.sorted { $0.lexicographicallyPrecedes($1) })\n\(policyCase.asciiJSON)"
                    )
                }
            }
        } while Date() < deadline || total < 2000  // thousands of cases even on a loaded machine
        print(
            "policy differential: seed \(seed), \(total) cases, \(disagreements) disagreements; \(allowed) allowed, \(errors) oslo errors, "
                + "\(brokenDenials) denied because a reached rule does not parse (oslo read it as '!'), \(deliberate) denied by a documented bound or unsupported form"
        )
        let common = reasons.sorted { $0.value > $1.value }.prefix(5).map { "\($0.value)× \($0.key)" }
        print("policy differential: most common documented denials: \(common.joined(separator: "; "))")
        #expect(disagreements == 0)
        #expect(total >= 2000, "the differential must decide thousands of cases, decided \(total)")
        #expect(deliberate * 10 < total, "documented denials must stay rare, or the test compares little: \(deliberate) of \(total)")
    }
}
