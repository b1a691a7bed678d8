// Python's `text % target` for a check's right side: `%(key)s` substitution and the errors Python raises.

/// What `match % target` gives in oslo.policy's checks.
enum PythonFormat {
    enum Outcome: Equatable {
        case text(String)
        /// `KeyError`: oslo.policy catches it and the check is false.
        case missingKey(String)
        /// `ValueError` / `TypeError`: oslo.policy lets it through, so the decision is denied.
        case error(String)
        /// Python would format something StagingFS does not reproduce (the whole target, numbers, non-ASCII reprs): denied.
        case unsupported(String)
    }

    /// Formats left to right, stopping at the first problem as Python does.
    static func apply(_ format: String, _ target: PolicyMapping) -> Outcome {
        let scalars = Array(format.unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        func at(_ offset: Int) -> Unicode.Scalar? { index + offset < scalars.count ? scalars[index + offset] : nil }
        while index < scalars.count {
            guard scalars[index] == "%" else {
                out.append(scalars[index])
                index += 1
                continue
            }
            index += 1
            guard let next = at(0) else { return .error("incomplete format") }
            if next == "%" {
                out.append("%")
                index += 1
                continue
            }
            guard next == "(" else { return .unsupported("'%' without a (key) formats the whole target") }
            // The key runs to the matching ')', counting nested parentheses.
            var nesting = 1, end = index + 1
            while end < scalars.count, nesting > 0 {
                if scalars[end] == "(" { nesting += 1 } else if scalars[end] == ")" { nesting -= 1 }
                end += 1
            }
            guard nesting == 0 else { return .error("incomplete format key") }
            let key = String(String.UnicodeScalarView(scalars[(index + 1)..<(end - 1)]))
            guard let value = target[key] else { return .missingKey(key) }
            index = end
            var leftAlign = false
            while let flag = at(0), "-+ #0".unicodeScalars.contains(flag) {
                if flag == "-" { leftAlign = true }
                index += 1
            }
            if at(0) == "*" { return .unsupported("'*' width in a format") }
            let width = number(scalars, &index)
            if width == tooLarge { return .unsupported("a format width of a million or more") }
            var precision: Int?
            if at(0) == "." {
                index += 1
                if at(0) == "*" { return .unsupported("'*' precision in a format") }
                precision = number(scalars, &index) ?? 0
                if precision == tooLarge { return .unsupported("a format precision of a million or more") }
            }
            if let modifier = at(0), "hlL".unicodeScalars.contains(modifier) { index += 1 }
            guard let conversion = at(0) else { return .error("incomplete format") }
            index += 1
            var piece: [Unicode.Scalar]
            switch conversion {
            case "s", "r", "a":
                guard let rendered = conversion == "s" ? value.pythonString : value.pythonRepr else {
                    return .unsupported("repr() of non-ASCII text")
                }
                piece = Array(rendered.unicodeScalars)
            case "c":
                switch value {
                case let .string(text) where text.unicodeScalars.count == 1: piece = Array(text.unicodeScalars)
                case .integer, .bool: return .unsupported("%c of a number")
                default: return .error("%c requires int or char")
                }
            default:
                guard "diuoxXeEfFgG".unicodeScalars.contains(conversion) else {
                    return .error("unsupported format character '\(conversion)'")
                }
                switch value {
                case .integer, .bool: return .unsupported("number formatting")
                default: return .error("%\(conversion) format: a real number is required")
                }
            }
            if let precision, "sra".unicodeScalars.contains(conversion), piece.count > precision { piece = Array(piece[..<precision]) }
            let padding = Array(repeating: Unicode.Scalar(" "), count: max(0, (width ?? 0) - piece.count))
            out.append(contentsOf: leftAlign ? piece + padding : padding + piece)
        }
        return .text(String(out))
    }

    private static let tooLarge = -1

    /// Decimal digits at `index`, if any (a width or precision); `tooLarge` past 999,999.
    private static func number(_ scalars: [Unicode.Scalar], _ index: inout Int) -> Int? {
        var value: Int?
        while index < scalars.count, ("0"..."9").contains(scalars[index]) {
            let next = (value ?? 0) * 10 + Int(scalars[index].value - 0x30)
            index += 1
            if next >= 1_000_000 { return tooLarge }
            value = next
        }
        return value
    }
}
