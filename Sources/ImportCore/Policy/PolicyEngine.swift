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

    public var description: String { "\(allowed ? "allow" : "deny"): \(ruleName) = \"\(ruleText)\"" }
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
    /// Glance's current defaults for every name StagingFS enforces (glance/policies/*.py). Documented in docs/policy.md.
    public static let defaults: [(name: String, rule: String)] = [
        ("context_is_admin", "role:admin"),
        ("default", ""),
        ("add_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)"),
        ("get_image", "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s"
            + " or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
        ("get_images", "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"),
        ("modify_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s)"),
        ("delete_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s)"),
        ("upload_image", "rule:context_is_admin or (role:member and project_id:%(project_id)s)"),
        ("download_image", "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s"
            + " or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
        ("publicize_image", "rule:context_is_admin"),
        ("get_task", "rule:default"),
        ("get_tasks", "rule:default"),
        ("add_task", "rule:default"),
        ("modify_task", "rule:default"),
        ("tasks_api_access", "rule:context_is_admin"),
    ]

    private struct State {
        var rules: [String: PolicyRule]
        var texts: [String: String]
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

    /// Loads the defaults and, when given, the policy file. A broken file at start-up is an error.
    public init(file: String?, logger: Logger) throws(PolicyFileError) {
        self.file = file
        self.logger = logger
        var texts = Dictionary(uniqueKeysWithValues: Self.defaults.map { ($0.name, $0.rule) })
        var signature: FileSignature?
        if let file {
            texts.merge(try Self.load(file)) { $1 }
            signature = Self.signature(of: file)
        }
        state = Mutex(State(rules: try Self.parseAll(texts, file: file ?? "<defaults>", source: nil), texts: texts, signature: signature))
    }

    /// Checks `action` for the caller against `target` (oslo.policy: a name without a rule falls back to `default`).
    public func enforce(_ action: String, credentials: PolicyCredentials, target: [String: String]) -> PolicyDecision {
        reloadIfChanged()
        let (rules, texts) = state.withLock { ($0.rules, $0.texts) }
        let name = rules[action] != nil ? action : "default"
        let evaluator = PolicyEvaluator(rules: rules) { [logger] missing in
            logger.warning("policy rule refers to an undefined rule; denying", metadata: ["policy.action": "\(action)", "policy.rule": "\(missing)"])
        }
        let allowed = rules[name].map { evaluator.allows($0, credentials, target, visiting: [name]) } ?? false
        return PolicyDecision(allowed: allowed, action: action, ruleName: name, ruleText: texts[name] ?? "")
    }

    /// A changed file is reloaded (checked at most once a second); a broken one is refused with file, line and
    /// reason in the log, and the last good policy stays in force.
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
            var texts = Dictionary(uniqueKeysWithValues: Self.defaults.map { ($0.name, $0.rule) })
            texts.merge(try Self.load(file)) { $1 }
            let rules = try Self.parseAll(texts, file: file, source: try? String(contentsOfFile: file, encoding: .utf8))
            state.withLock {
                $0.rules = rules
                $0.texts = texts
                $0.signature = signature
            }
            logger.notice("policy file reloaded", metadata: ["policy.file": "\(file)"])
        } catch {
            state.withLock { $0.signature = signature }
            logger.error("policy file refused; the last good policy stays in force", metadata: ["policy.file": "\(file)", "error": "\(error)"])
        }
    }

    /// The rules a file sets, by name.
    static func load(_ file: String) throws(PolicyFileError) -> [String: String] {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw .unreadable(file: file, reason: (error as NSError).localizedDescription)
        }
        let parsed: Any?
        do { parsed = try Yams.load(yaml: text) } catch { throw .malformed(file: file, reason: "\(error)") }
        if parsed == nil { return [:] }
        guard let mapping = parsed as? [String: Any] else { throw .malformed(file: file, reason: "the top level is not a mapping") }
        var rules: [String: String] = [:]
        for (name, value) in mapping {
            guard let rule = value as? String else {
                throw .badRule(file: file, line: line(of: name, in: text), name: name, reason: "the rule must be a string")
            }
            rules[name] = rule
        }
        _ = try parseAll(rules, file: file, source: text)
        return rules
    }

    private static func parseAll(_ texts: [String: String], file: String, source: String?) throws(PolicyFileError) -> [String: PolicyRule] {
        var rules: [String: PolicyRule] = [:]
        for (name, text) in texts {
            do { rules[name] = try PolicyParser.parse(text) } catch {
                throw .badRule(file: file, line: source.flatMap { line(of: name, in: $0) }, name: name, reason: error.reason)
            }
        }
        return rules
    }

    private static func line(of name: String, in text: String) -> Int? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.firstIndex { $0.contains("\"\(name)\"") || $0.contains("'\(name)'") || $0.trimmingCharacters(in: .whitespaces).hasPrefix(name + ":") }
            .map { $0 + 1 }
    }

    private static func signature(of file: String) -> FileSignature? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file) else { return nil }
        return FileSignature(modified: attributes[.modificationDate] as? Date ?? .distantPast, size: attributes[.size] as? Int ?? 0)
    }
}
