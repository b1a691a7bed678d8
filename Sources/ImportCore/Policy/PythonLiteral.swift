// The left side of a generic check as oslo.policy reads it: `ast.literal_eval(kind)`, else a dotted credential path.

/// Reproduces what `ast.literal_eval` makes of a check's kind, for the literals a policy can hold, and Python's `repr`.
enum PythonLiteral {
    enum Kind: Equatable {
        /// A literal: compared with the right side as Python's `str()` of the value.
        case literal(String)
        /// Not a literal (`ValueError`): looked up in the credentials along these `.`-separated keys.
        case path([String])
        /// Python cannot parse it (`SyntaxError`): oslo.policy raises, so the decision is denied.
        case syntaxError(String)
        /// Valid Python whose value StagingFS does not reproduce (sets, calls, f-strings, …): denied.
        case unsupported(String)
    }

    static func classify(_ kind: String) -> Kind {
        if kind.isEmpty { return .syntaxError("the left side of the check is empty") }
        var parser = Parser(Array(kind.unicodeScalars))
        switch parser.literal() {
        case let .value(value):
            return value.pythonString.map(Kind.literal) ?? .unsupported("the literal \(kind) has non-ASCII text inside a container")
        case let .syntaxError(reason): return .syntaxError(reason)
        case .notLiteral: break
        }
        let segments = kind.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if segments.allSatisfy(isPlainName) { return .path(segments) }
        if segments.count == 1, keywords.contains(kind), !["yield", "await", "lambda"].contains(kind) {
            return .syntaxError("'\(kind)' is a Python keyword")
        }
        return .unsupported("'\(kind)' is neither a Python literal nor a dotted credential name")
    }

    /// An ASCII identifier that is not a keyword: Python parses it as a name, which `literal_eval` refuses.
    private static func isPlainName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, isNameScalar(first), !("0"..."9").contains(first) else { return false }
        return text.unicodeScalars.allSatisfy(isNameScalar) && !keywords.contains(text)
    }

    static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    static let keywords: Set<String> = [
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
        "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
        "pass", "raise", "return", "try", "while", "with", "yield",
    ]

    /// `repr()` of a str; nil for text with non-ASCII characters (Python's notion of printable is not reproduced).
    static func repr(_ text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.allSatisfy(\.isASCII) else { return nil }
        return quoted(scalars.map { UInt8($0.value) }, prefix: "")
    }

    /// Python's quoting for str and bytes reprs: `'` unless the text has `'` and no `"`.
    static func quoted(_ bytes: [UInt8], prefix: String) -> String {
        let quote: UInt8 = bytes.contains(0x27) && !bytes.contains(0x22) ? 0x22 : 0x27
        var out = prefix + String(UnicodeScalar(quote))
        for byte in bytes {
            switch byte {
            case 0x5C: out += "\\\\"
            case quote: out += "\\" + String(UnicodeScalar(quote))
            case 0x09: out += "\\t"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x20..<0x7F: out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let hex = String(byte, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out + String(UnicodeScalar(quote))
    }

    /// `repr()` of a float: the shortest digits that round-trip, in fixed notation for exponents -4 < e ≤ 16.
    static func floatRepr(_ value: Double) -> String {
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        let sign = value < 0 ? "-" : ""
        let text = abs(value).description
        let parts = text.split(separator: "e")
        let mantissa = parts[0], exponent = parts.count > 1 ? Int(parts[1])! : 0
        var digits = Array(mantissa.filter { $0 != "." })
        var point = (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count) + exponent
        while digits.first == "0" { digits.removeFirst(); point -= 1 }
        while digits.last == "0" { digits.removeLast() }
        let all = String(digits)
        if point > -4, point <= 16 {
            if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + all }
            if point >= digits.count { return sign + all + String(repeating: "0", count: point - digits.count) + ".0" }
            return sign + String(digits[..<point]) + "." + String(digits[point...])
        }
        let power = point - 1
        let magnitude = String(abs(power))
        return sign + String(digits[0]) + (digits.count > 1 ? "." + String(digits[1...]) : "")
            + (power < 0 ? "e-" : "e+") + (magnitude.count < 2 ? "0" + magnitude : magnitude)
    }
}
