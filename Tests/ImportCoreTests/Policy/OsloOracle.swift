// The real oslo.policy as an oracle: a Python driver run in the test virtualenv, one process per batch of cases.
import Foundation

@testable import ImportCore

/// One decision to compare: named rules (in order; a later duplicate wins, as in a Python dict), a name, credentials, target.
struct PolicyCase {
    var rules: [(name: String, text: String)]
    var action: String
    var credentials: PolicyMapping
    var target: PolicyMapping

    /// JSON written by hand so that key order and code points reach Python exactly as generated.
    var json: String {
        let pairs = rules.map { "[\(Self.quote($0.name)),\(Self.quote($0.text))]" }.joined(separator: ",")
        return "{\"rules\":[\(pairs)],\"action\":\(Self.quote(action)),\"creds\":\(Self.json(.mapping(credentials))),"
            + "\"target\":\(Self.json(.mapping(target)))}"
    }

    static func json(_ value: PolicyValue) -> String {
        switch value {
        case let .string(text): return quote(text)
        case let .integer(number): return String(number)
        case let .bool(flag): return flag ? "true" : "false"
        case .null: return "null"
        case let .list(items): return "[" + items.map(json).joined(separator: ",") + "]"
        case let .mapping(mapping):
            return "{" + mapping.entries.map { quote($0.key) + ":" + json($0.value) }.joined(separator: ",") + "}"
        }
    }

    /// The case as ASCII-only JSON, for a report that survives any terminal.
    var asciiJSON: String {
        var out = ""
        for scalar in json.unicodeScalars {
            if scalar.isASCII { out.unicodeScalars.append(scalar); continue }
            for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
        }
        return out
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// What oslo.policy made of a case.
struct OsloVerdict: Equatable {
    /// Names whose text oslo.policy logged as not understood.
    var broken: Set<[UInt32]>
    /// oslo.policy's own decision: "allow", "deny" or "error:<exception>".
    var raw: String
    /// The decision with each broken rule raising when reached: what StagingFS promises to equal.
    var strict: String
}

enum OsloOracleError: Error, CustomStringConvertible {
    case missingVirtualenv(String)
    case driverFailed(status: Int32, stderr: String)
    case badOutput(String)

    var description: String {
        switch self {
        case let .missingVirtualenv(path):
            return "oslo.policy's virtualenv is missing (\(path)): run scripts/install-deps, or set STAGINGFS_OSLO_PYTHON"
        case let .driverFailed(status, stderr): return "the oslo.policy driver exited \(status): \(stderr)"
        case let .badOutput(reason): return "the oslo.policy driver's output cannot be read: \(reason)"
        }
    }
}

enum OsloOracle {
    static var python: String {
        if let path = ProcessInfo.processInfo.environment["STAGINGFS_OSLO_PYTHON"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/venv-policy/bin/python").path
    }

    /// Decides every case with the real oslo.policy.
    static func decide(_ cases: [PolicyCase]) throws -> [OsloVerdict] {
        guard FileManager.default.isExecutableFile(atPath: python) else { throw OsloOracleError.missingVirtualenv(python) }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("oslo-driver-\(UUID().uuidString).py")
        try driver.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("oslo-cases-\(UUID().uuidString).json")
        try ("[" + cases.map(\.json).joined(separator: ",\n") + "]").write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path]
        process.standardInput = try FileHandle(forReadingFrom: input)
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw OsloOracleError.driverFailed(status: process.terminationStatus, stderr: stderr) }
        guard let rows = try JSONSerialization.jsonObject(with: data) as? [[String: Any]], rows.count == cases.count else {
            throw OsloOracleError.badOutput("expected \(cases.count) verdicts")
        }
        return try rows.map { row in
            guard let broken = row["broken"] as? [[Int]], let raw = row["raw"] as? String, let strict = row["strict"] as? String else {
                throw OsloOracleError.badOutput("\(row)")
            }
            return OsloVerdict(broken: Set(broken.map { $0.map(UInt32.init) }), raw: raw, strict: strict)
        }
    }

    /// Reads cases on stdin, writes verdicts on stdout. Rule names go back as code points so nothing renormalises them.
    /// HTTP checks would call out: requests.post is replaced by a failure, which is what an unreachable server gives.
    static let driver = #"""
        import json, logging, sys
        import requests

        def _offline(*args, **kwargs):
            raise requests.exceptions.ConnectionError('the differential test makes no network calls')

        requests.post = _offline

        from oslo_config import cfg
        from oslo_policy import _checks, _parser, policy

        class _Count(logging.Handler):
            def __init__(self):
                super().__init__()
                self.count = 0

            def emit(self, record):
                self.count += 1

        counter = _Count()
        parser_log = logging.getLogger('oslo_policy._parser')
        parser_log.addHandler(counter)
        parser_log.setLevel(logging.DEBUG)
        parser_log.propagate = False

        class _Broken(_checks.BaseCheck):
            def __str__(self):
                return '<broken>'

            def __call__(self, target, creds, enforcer, current_rule=None):
                raise RuntimeError('a broken rule was reached')

        conf = cfg.ConfigOpts()
        conf([])
        enforcer = policy.Enforcer(conf, use_conf=False)

        def decide(rules, action, creds, target):
            enforcer.set_rules(policy.Rules(rules, 'default'), overwrite=True, use_conf=False)
            try:
                return 'allow' if enforcer.enforce(action, target, json.loads(json.dumps(creds))) else 'deny'
            except BaseException as error:
                return 'error:' + type(error).__name__

        verdicts = []
        for case in json.loads(sys.stdin.buffer.read().decode('utf-8')):
            raw, strict = {}, {}
            for name, text in case['rules']:
                before = counter.count
                check = _parser.parse_rule(text)
                raw[name] = check
                strict[name] = _Broken() if counter.count != before else check
            broken = [[ord(c) for c in name] for name, check in strict.items() if isinstance(check, _Broken)]
            verdicts.append({
                'broken': broken,
                'raw': decide(raw, case['action'], case['creds'], case['target']),
                'strict': decide(strict, case['action'], case['creds'], case['target']),
            })
        json.dump(verdicts, sys.stdout)
        """#
}
