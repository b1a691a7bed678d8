// The policy engine: Glance's defaults, overridden name by name by policy.yaml / policy.json, reloaded on change.
import Foundation
import Logging
import Synchronization
import Yams

/// The outcome of one check, with the rule that decided it (for logs and `importctl policy-check`).
public struct PolicyDecision: Sendable, Equatable, CustomStringConvertible {
    public var allowed: Bool
    public var action: String
    /// The name of the rule that was evaluated (the action's own, or `default`) and its text.
    public var ruleName: String
    public var ruleText: String
    /// Why the rule could not be evaluated (then it denies): a broken rule, a cycle, an unusable file, …
    public var error: String?

    public var description: String {
        "\(allowed ? "allow" : "deny"): \(ruleName) = \"\(ruleText)\"" + (error.map { " (\($0))" } ?? "")
    }
}

/// A policy file that cannot be used.
public enum PolicyFileError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case malformed(file: String, reason: String)
    case badRule(file: String, line: Int?, name: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): return "cannot read policy file \(file): \(reason)"
        case let .malformed(file, reason): return "policy file \(file) is not a YAML or JSON mapping of rule names to rules: \(reason)"
        case let .badRule(file, line, name, reason):
            return "\(file)\(line.map { ":\($0)" } ?? ""): rule '\(name)' cannot be parsed: \(reason)"
        }
    }
}

public final class PolicyEngine: Sendable {
    private struct State {
        var rules: PolicyRules
        var texts: [String: String]
        /// Set while the file on disk cannot be read as a policy at all: every check is denied until it can.
        var unusable: PolicyFileError?
        var signature: FileSignature?
        var lastCheck = Date.distantPast
    }

    private struct FileSignature: Equatable {
        var modified: Date
        var size: Int
    }

    public let file: String?
    private let logger: Logger
    private let state: Mutex<State>
    private static let scopes = Dictionary(defaults.map { ($0.name, $0.scopeTypes) }) { $1 }

    /// Loads the defaults and, when given, the policy file. A broken file at start-up is an error: nothing is served
    /// yet, and refusing to start is the clearest way to say which line is wrong.
    public init(file: String?, logger: Logger) throws(PolicyFileError) {
        self.file = file
        self.logger = logger
        var texts = Self.defaultTexts
        var signature: FileSignature?
        if let file {
            let loaded = try PolicyFile.load(file)
            if let broken = loaded.broken.first {
                throw .badRule(file: file, line: broken.line, name: broken.name, reason: broken.error.reason)
            }
            texts.merge(loaded.texts) { $1 }
            signature = Self.signature(of: file)
        }
        state = Mutex(State(rules: Self.parse(texts), texts: texts, signature: signature))
        warnUndefined()
    }

    private static var defaultTexts: [String: String] { Dictionary(defaults.map { ($0.name, $0.rule) }) { $1 } }

    /// Checks `action` for the caller against `target` (oslo.policy: a name without a rule falls back to `default`).
    public func enforce(_ action: String, credentials: PolicyCredentials, target: [String: String]) -> PolicyDecision {
        reloadIfChanged()
        let (rules, texts, unusable) = state.withLock { ($0.rules, $0.texts, $0.unusable) }
        if let unusable {
            logger.error("policy file unusable; denying", metadata: ["policy.action": "\(action)", "error": "\(unusable)"])
            return PolicyDecision(allowed: false, action: action, ruleName: action, ruleText: "", error: unusable.description)
        }
        let (name, result) = Self.decide(
            action, rules: rules, credentials: credentials.mapping,
            target: PolicyMapping(strings: target), scopeTypes: Self.scopes[action] ?? nil)
        switch result {
        case let .success(allowed):
            return PolicyDecision(allowed: allowed, action: action, ruleName: name, ruleText: texts[name] ?? "")
        case let .failure(error):
            logger.error(
                "policy rule cannot be evaluated; denying",
                metadata: [
                    "policy.file": "\(file ?? "<defaults>")", "policy.action": "\(action)", "policy.rule": "\(name)", "error": "\(error)",
                ])
            return PolicyDecision(allowed: false, action: action, ruleName: name, ruleText: texts[name] ?? "", error: error.description)
        }
    }

    /// oslo.policy's `Enforcer.enforce` for one name: the name's rule or `default`, the registered scope types, then
    /// the evaluation. Returns the rule that decided.
    static func decide(
        _ action: String, rules: PolicyRules, credentials: PolicyMapping, target: PolicyMapping,
        scopeTypes: [String]?
    ) -> (String, Result<Bool, PolicyEvaluationError>) {
        var name = action
        var entry = rules[action]
        if entry == nil {
            name = "default"
            entry = rules[name]
        }
        guard let entry else { return (name, .success(false)) }
        var credentials = credentials
        // oslo.policy copies a system scope to `system`, then takes the token's scope from `system` or `domain_id`.
        if let system = credentials["system_scope"], system.isTruthy { credentials["system"] = system }
        let scope = credentials["system"]?.isTruthy == true ? "system" : credentials["domain_id"]?.isTruthy == true ? "domain" : "project"
        if let scopeTypes, !scopeTypes.contains(scope) { return (name, .success(false)) }
        switch entry {
        case let .broken(error): return (name, .failure(.brokenRule(name: name, error: error)))
        case let .rule(rule):
            let evaluator = PolicyEvaluator(rules: rules)
            do throws(PolicyEvaluationError) {
                return (name, .success(try evaluator.decide(rule, named: name, credentials: credentials, target: target)))
            } catch {
                return (name, .failure(error))
            }
        }
    }

    /// A changed file is reloaded (checked at most once a second). Good rules apply at once and broken ones deny, each
    /// logged with file, line and reason, so a rule just revoked never stays allowed; a file that cannot be read as a
    /// policy at all denies everything until it is fixed.
    public func reloadIfChanged() {
        guard let file else { return }
        let due = state.withLock { state -> Bool in
            guard Date().timeIntervalSince(state.lastCheck) >= 1 else { return false }
            state.lastCheck = Date()
            return true
        }
        guard due else { return }
        let signature = Self.signature(of: file)
        guard signature != state.withLock({ $0.signature }) else { return }
        do {
            let loaded = try PolicyFile.load(file)
            for broken in loaded.broken {
                logger.error(
                    "policy rule cannot be parsed; it denies",
                    metadata: [
                        "policy.file": "\(file)", "policy.line": "\(broken.line.map(String.init) ?? "?")",
                        "policy.rule": "\(broken.name)", "error": "\(broken.error.reason)",
                    ])
            }
            var texts = Self.defaultTexts
            texts.merge(loaded.texts) { $1 }
            var rules = Self.parse(texts)
            for broken in loaded.broken { rules[broken.name] = .broken(broken.error) }
            state.withLock {
                $0.rules = rules
                $0.texts = texts
                $0.unusable = nil
                $0.signature = signature
            }
            logger.notice("policy file reloaded", metadata: ["policy.file": "\(file)", "policy.broken": "\(loaded.broken.count)"])
            warnUndefined()
        } catch {
            state.withLock {
                $0.unusable = error
                $0.signature = signature
            }
            logger.error("policy file cannot be used; every check is denied until it is fixed", metadata: ["policy.file": "\(file)", "error": "\(error)"])
        }
    }

    private static func parse(_ texts: [String: String]) -> PolicyRules {
        var rules = PolicyRules()
        for (name, text) in texts {
            do throws(PolicyParseError) { rules[name] = .rule(try PolicyParser.parse(text)) } catch { rules[name] = .broken(error) }
        }
        return rules
    }

    /// oslo.policy warns at load about references to undefined names (they fall back to `default`).
    private func warnUndefined() {
        let (rules, texts) = state.withLock { ($0.rules, $0.texts) }
        for name in texts.keys.sorted() {
            guard case let .rule(rule)? = rules[name] else { continue }
            for missing in rule.references where rules[missing] == nil {
                logger.warning(
                    "policy rule refers to an undefined rule; oslo.policy uses default for it",
                    metadata: ["policy.rule": "\(name)", "policy.undefined": "\(missing)"])
            }
        }
    }

    private static func signature(of file: String) -> FileSignature? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file) else { return nil }
        return FileSignature(modified: attributes[.modificationDate] as? Date ?? .distantPast, size: attributes[.size] as? Int ?? 0)
    }
}

extension PolicyRule {
    /// The names this rule refers to with `rule:` (depth is bounded by the parser).
    var references: [String] {
        switch self {
        case let .rule(name): return [name]
        case let .and(rules), let .or(rules): return rules.flatMap(\.references)
        case let .not(rule): return rule.references
        default: return []
        }
    }
}
