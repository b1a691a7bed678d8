// Random policy cases over oslo.policy's whole language: rules, white space, case, quoting, substitutions, references.
import Foundation

@testable import ImportCore

/// A seeded generator (splitmix64), so a run can be repeated from the seed it prints.
struct PolicyCaseGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(bound))
    }

    private mutating func pick<T>(_ items: [T]) -> T { items[next(items.count)] }
    private mutating func chance(_ percent: Int) -> Bool { next(100) < percent }

    // MARK: vocabulary

    /// Precomposed and decomposed é, final sigma, dotted I, Kelvin sign, ligatures: where Python and Swift disagree.
    static let words = [
        "admin", "Admin", "ADMIN", "member", "reader", "p1", "p2", "u1", "caf\u{E9}", "cafe\u{301}",
        "\u{3A3}\u{391}\u{3A3}", "\u{3C3}\u{3B1}\u{3C2}", "\u{3C3}\u{3B1}\u{3C3}", "\u{130}", "i\u{307}", "\u{212A}",
        "k", "stra\u{DF}e", "STRASSE", "\u{FB01}", "\u{1C5}", "public", "shared", "True", "False", "None", "1", "",
    ]
    static let names = ["a", "b", "c", "default", "context_is_admin", "caf\u{E9}", "cafe\u{301}", "A", "x.y", "undefined"]
    static let kinds = [
        "project_id", "user_id", "is_admin", "roles", "tenant", "system", "nested.key", "nested.list.k",
        "nested", "missing", "'public'", "\"p1\"", "True", "False", "None", "1", "-1", "+1", "0x1f", "0o17",
        "0b1", "00", "1_000", "1.5", "1e16", "1e-5", ".5", "1.", "[1,'a']", "[]", "('x',)", "1,2", "b'x'",
        "rb'\\x'", "'a''b'", "'caf\u{E9}'", "'cafe\u{301}'", "'\\x41'", "'\\u00e9'", "u'x'", "'\\q'", "\"'\"",
        "a.b.c", "user", "tenant_id", "'\u{3A3}'", "'\u{212A}'",
    ]
    /// Left sides that make oslo.policy raise (or that StagingFS does not reproduce): rare, or most cases would be errors.
    static let oddKinds = [
        "01", "1a", "", "not", "if", "x[1]", "{1}", "'open", "f'x'", "1j", "...", "a..b", "roles.x",
        "nested.deep.k", "user_id.x",
    ]
    static let matches = [
        "%(project_id)s", "%(owner)s", "%(missing)s", "%(x)s", "%(role)s", "%(n)s", "%(flag)s", "%(none)s",
        "%(list)s", "p1", "True", "%(visibility)s", "%(a(b)s", "%(x)5s", "%(x)-3s|", "%(x).1s", "%(x)r",
        "%(x)c", "%%", "public", "1", "[1, 'a']", "b'x'", "1e+16", "1.5", "0.5", "1.0", "31", "(1, 2)",
        "('x',)", "None", "*", "u1", "caf\u{E9}", "cafe\u{301}", "%(project_id)s%%", "a%(x)sb",
    ]
    static let oddMatches = ["%(x)d", "%(n)d", "%", "100%", "%s", "%(x)q", "%(x", "%(x)", "%(x)%", "%(x)*s"]
    static let spaces = [
        " ", " ", " ", "  ", "\t", "\n", "\r\n", "\u{A0}", "\u{2003}", "\u{3000}", "\u{1680}", "\u{85}",
        "\u{B}", "\u{C}", "\u{1C}", "\u{2028}", "\u{202F}",
    ]
    /// Characters that look like space but do not split in Python.
    static let nonSpaces = ["\u{200B}", "\u{FEFF}", "\u{180E}", "\u{2060}"]

    // MARK: rules

    mutating func word() -> String { pick(Self.words) }

    /// Python-ish punctuation, letters, digits and awkward scalars in no order: left and right sides nobody writes.
    static let noiseScalars = Array("ab_09xXeEjJ.,+-'\"\\()[]{}%:*@!#|rbufRBUF\u{E9}\u{301}\u{3A3}\u{212A}\u{0}\u{7F}\u{FFFF}\u{1F600}".unicodeScalars)

    mutating func noise() -> String {
        String(String.UnicodeScalarView((0..<next(12)).map { _ in Self.noiseScalars[next(Self.noiseScalars.count)] }))
    }

    mutating func atom() -> String {
        switch next(20) {
        case 0: return pick(["@", "!", "@", "!"])
        case 1...4: return "role:" + (chance(25) ? pick(["%(role)s", "%(missing)s", "%(x)s", "%"]) : word())
        case 5...7: return "rule:" + pick(Self.names)
        case 8...15:
            if chance(3) { return noise().replacingOccurrences(of: ":", with: "") + ":" + noise() }
            let kind = chance(8) ? pick(Self.oddKinds) : pick(Self.kinds)
            return kind + ":" + (chance(60) ? (chance(8) ? pick(Self.oddMatches) : pick(Self.matches)) : word())
        case 16 where chance(30): return pick(["http://127.0.0.1:9/%(x)s", "https://127.0.0.1:9/check", "http:", "HTTP://x"])
        case 17 where chance(30): return pick(["admin", "'quoted'", "\"q\"", "''", "('x')", "role", "not:x", "and:x", "@@"])
        case 18: return pick(["roles:admin", "roles:Admin", "tenant:p1", "tenant_id:p1", "user:u1", "system:all"])
        default: return pick(["project_id:%(project_id)s", "user_id:%(x)s", "'public':%(visibility)s", "True:%(flag)s", "None:%(none)s"])
        }
    }

    mutating func keyword(_ base: String) -> String {
        chance(80)
            ? base
            : pick([
                base.uppercased(), base.capitalized, String(base.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.uppercased()) : $0.element }),
            ])
    }

    mutating func space() -> String { chance(85) ? " " : pick(Self.spaces) }

    mutating func expression(depth: Int) -> String {
        guard depth > 0, chance(65) else { return atom() }
        switch next(10) {
        case 0...3: return join((0..<(2 + next(3))).map { _ in expression(depth: depth - 1) }, keyword("and"))
        case 4...6: return join((0..<(2 + next(3))).map { _ in expression(depth: depth - 1) }, keyword("or"))
        case 7: return keyword("not") + space() + expression(depth: depth - 1)
        default:
            let inner = expression(depth: depth - 1)
            let tight = chance(50)
            return "(" + (tight ? "" : space()) + inner + (tight ? "" : space()) + ")"
        }
    }

    private mutating func join(_ parts: [String], _ keyword: String) -> String {
        var out = parts[0]
        for part in parts.dropFirst() { out += space() + keyword + space() + part }
        return out
    }

    /// A rule text: mostly well formed, sometimes empty, blank, padded, mutated or with a non-splitting space.
    mutating func ruleText() -> String {
        switch next(40) {
        case 0: return ""
        case 1: return pick([" ", "\t", "\r\n", "\u{A0}", "\u{3000}"])
        case 2: return "not" + space() + "rule:" + pick(["undefined", "a", "default"])
        case 3: return String(repeating: "(", count: next(4)) + atom() + String(repeating: ")", count: next(4))
        default: break
        }
        var text = expression(depth: 1 + next(4))
        if chance(10) { text = space() + text + space() }
        if chance(6), !text.isEmpty {
            var scalars = Array(text.unicodeScalars)
            let index = next(scalars.count)
            switch next(3) {
            case 0: scalars.remove(at: index)
            case 1: scalars.insert(pick(["(", ")", ":", "%", "'", " "]).unicodeScalars.first!, at: index)
            default: scalars.insert(pick(Self.nonSpaces).unicodeScalars.first!, at: index)
            }
            text = String(String.UnicodeScalarView(scalars))
        }
        return text
    }

    // MARK: cases

    mutating func value() -> PolicyValue {
        switch next(12) {
        case 0: return .integer(pick([0, 1, 31, -1]))
        case 1: return .bool(chance(50))
        case 2: return .null
        default: return .string(word())
        }
    }

    mutating func credentials() -> PolicyMapping {
        var entries: [PolicyMapping.Entry] = []
        func add(_ key: String, _ value: PolicyValue) { entries.append(.init(key: key, value: value)) }
        if chance(90) { add("user_id", chance(80) ? .string(pick(["u1", "caf\u{E9}", "cafe\u{301}"])) : value()) }
        if chance(90) { add("project_id", chance(80) ? .string(pick(["p1", "p2", "caf\u{E9}", "cafe\u{301}"])) : value()) }
        switch next(10) {
        case 0: break
        case 1: add("roles", chance(70) ? .string(word()) : pick([.null, .integer(1), .list([.string("admin"), .integer(3)])]))
        default: add("roles", .list((0..<next(4)).map { _ in .string(word()) }))
        }
        if chance(40) { add("is_admin", chance(70) ? .bool(chance(50)) : .string("True")) }
        if chance(30) {
            add(
                "nested",
                .mapping(
                    PolicyMapping([
                        .init(key: "key", value: .string(pick(["p1", "1", "True"]))),
                        .init(
                            key: "list",
                            value: .list([
                                .mapping(PolicyMapping([.init(key: "k", value: .string("p1"))])),
                                chance(20) ? .string("p2") : .mapping(PolicyMapping([.init(key: "k", value: .string("p2"))])),
                            ])),
                        .init(key: "deep", value: .string("not a mapping")),
                    ])))
        }
        if chance(10) { add("system_scope", .string(pick(["all", ""]))) }
        if chance(10) { add("domain_id", .string("d1")) }
        if chance(10) { add("tenant", .string("p1")) }
        return PolicyMapping(entries)
    }

    mutating func target() -> PolicyMapping {
        var entries: [PolicyMapping.Entry] = []
        for key in ["project_id", "owner", "visibility", "x", "role", "n", "flag", "none", "list", "a(b"] where chance(70) {
            let value: PolicyValue
            switch key {
            case "visibility": value = .string(pick(["public", "private", "shared", "community"]))
            case "n": value = .integer(pick([0, 1, 31]))
            case "flag": value = .bool(chance(50))
            case "none": value = .null
            case "list": value = .list([.integer(1), .string("a")])
            default: value = chance(85) ? .string(word()) : self.value()
            }
            entries.append(.init(key: key, value: value))
        }
        return PolicyMapping(entries)
    }

    mutating func policyCase() -> PolicyCase {
        var rules: [(name: String, text: String)] = []
        for name in Self.names where name != "undefined" && chance(55) { rules.append((name, ruleText())) }
        if chance(25) { rules.append(("chain0", "rule:chain1")); rules.append(("chain1", chance(50) ? "rule:chain0" : ruleText())) }
        let action = chance(80) ? (rules.isEmpty ? "a" : pick(rules).name) : pick(["undefined_action", "a", "default"])
        return PolicyCase(rules: rules, action: action, credentials: credentials(), target: target())
    }
}
