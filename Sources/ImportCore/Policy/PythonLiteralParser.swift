// A parser for the Python literals a check's left side can hold: str and bytes, numbers, True/False/None, lists, tuples.

extension PythonLiteral {
    /// A literal's value, enough to print it as Python's `str()` does.
    indirect enum Value {
        case text(String)
        case bytes([UInt8])
        /// Decimal digits, sign included: Python ints have no size limit.
        case integer(String)
        case float(Double)
        case constant(String)
        case list([Value])
        case tuple([Value])

        var pythonString: String? {
            if case let .text(text) = self { return text }
            return pythonRepr
        }

        var pythonRepr: String? {
            switch self {
            case let .text(text): return PythonLiteral.repr(text)
            case let .bytes(bytes): return PythonLiteral.quoted(bytes, prefix: "b")
            case let .integer(digits): return digits
            case let .float(value): return PythonLiteral.floatRepr(value)
            case let .constant(name): return name
            case let .list(items): return Self.join(items).map { "[" + $0 + "]" }
            case let .tuple(items): return Self.join(items).map { items.count == 1 ? "(" + $0 + ",)" : "(" + $0 + ")" }
            }
        }

        private static func join(_ items: [Value]) -> String? {
            var parts: [String] = []
            for item in items {
                guard let part = item.pythonRepr else { return nil }
                parts.append(part)
            }
            return parts.joined(separator: ", ")
        }
    }

    enum Parsed {
        case value(Value)
        case syntaxError(String)
        /// Something else: a name, an expression, or a literal form not reproduced here.
        case notLiteral
    }

    /// Recursive descent over the kind's scalars; nesting is bounded so a hostile kind cannot exhaust the stack.
    struct Parser {
        let scalars: [Unicode.Scalar]
        var position = 0
        private var depth = 0
        private static let maximumDepth = 32

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        private var current: Unicode.Scalar? { peek(0) }
        func peek(_ offset: Int) -> Unicode.Scalar? { position + offset < scalars.count ? scalars[position + offset] : nil }
        mutating func skip(_ count: Int) { position += count }
        func scalarsAhead(_ count: Int) -> ArraySlice<Unicode.Scalar> { scalars[position..<min(position + count, scalars.count)] }

        /// The whole text as one literal (a top-level comma makes a tuple, as in Python).
        mutating func literal() -> Parsed {
            guard !scalars.contains("\u{0}") else { return .notLiteral }
            let parsed = sequence(closing: nil)
            guard case .value = parsed else { return parsed }
            return position == scalars.count ? parsed : .notLiteral
        }

        /// `item (, item)* [,]` up to `closing`; one item without a comma is itself, otherwise a tuple.
        private mutating func sequence(closing: Unicode.Scalar?) -> Parsed {
            var items: [Value] = []
            var sawComma = false
            while current != closing {
                switch item() {
                case let .value(value): items.append(value)
                case let other: return other
                }
                guard current == "," else { break }
                sawComma = true
                position += 1
            }
            if items.isEmpty { return closing == ")" ? .value(.tuple([])) : .notLiteral }
            return .value(sawComma ? .tuple(items) : items[0])
        }

        private mutating func item() -> Parsed {
            guard let scalar = current else { return .notLiteral }
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maximumDepth { return .notLiteral }
            switch scalar {
            case "[":
                position += 1
                var items: [Value] = []
                while current != "]" {
                    switch item() {
                    case let .value(value): items.append(value)
                    case let other: return other
                    }
                    guard current == "," else { break }
                    position += 1
                }
                guard current == "]" else { return .notLiteral }
                position += 1
                return .value(.list(items))
            case "(":
                position += 1
                let inner = sequence(closing: ")")
                guard case .value = inner, current == ")" else { return inner.isValue ? .notLiteral : inner }
                position += 1
                return inner
            case "+", "-":
                position += 1
                guard let next = current, ("0"..."9").contains(next) || next == "." else { return .notLiteral }
                let number = self.number()
                guard case let .value(value) = number else { return number }
                guard scalar == "-" else { return number }
                switch value {
                case let .integer(digits): return .value(.integer(digits == "0" ? "0" : "-" + digits))
                case let .float(double): return .value(.float(-double))
                default: return .notLiteral
                }
            case "0"..."9", ".": return number()
            case "'", "\"": return strings(prefixLength: 0)
            default:
                guard PythonLiteral.isNameScalar(scalar) else { return .notLiteral }
                let start = position
                while let next = current, PythonLiteral.isNameScalar(next) { position += 1 }
                let name = String(String.UnicodeScalarView(scalars[start..<position]))
                if current == "'" || current == "\"" {
                    let length = position - start
                    position = start
                    return strings(prefixLength: length)
                }
                return ["True", "False", "None"].contains(name) ? .value(.constant(name)) : .notLiteral
            }
        }

        // MARK: numbers

        /// Decimal, hexadecimal, octal and binary integers and floats, with Python's rules for `_` and leading zeros.
        private mutating func number() -> Parsed {
            let start = position
            if current == "0", position + 1 < scalars.count, let base = ["x": 16, "o": 8, "b": 2][Character(scalars[position + 1]).lowercased()] {
                position += 2
                if current == "_" { position += 1 }
                guard let digits = digitRun(radix: base), !followedByName else { return .notLiteral }
                guard let value = Int(digits, radix: base) else { return .notLiteral }
                return .value(.integer(String(value)))
            }
            let whole = digitRun(radix: 10)
            var isFloat = false
            var fraction: String?
            if current == "." {
                isFloat = true
                position += 1
                fraction = digitRun(radix: 10)
                if whole == nil, fraction == nil { position = start; return .notLiteral }
            } else if whole == nil {
                return .notLiteral
            }
            var exponent: String?
            if let marker = current, marker == "e" || marker == "E" {
                isFloat = true
                position += 1
                var sign = ""
                if let next = current, next == "+" || next == "-" { sign = String(next); position += 1 }
                guard let digits = digitRun(radix: 10) else { return .notLiteral }
                exponent = sign + digits
            }
            guard !followedByName, current != "." else { return .notLiteral }
            if !isFloat, let whole {
                let trimmed = whole.drop { $0 == "0" }
                if trimmed.isEmpty { return .value(.integer("0")) }
                if whole.first == "0" { return .syntaxError("leading zeros in decimal integer literals are not permitted") }
                return trimmed.count > 4300 ? .notLiteral : .value(.integer(String(trimmed)))
            }
            let text = (whole ?? "0") + "." + (fraction ?? "0") + (exponent.map { "e" + $0 } ?? "")
            return Double(text).map { .value(.float($0)) } ?? .notLiteral
        }

        /// Digits of `radix` with single underscores between them; nil when there are none or an `_` is misplaced.
        private mutating func digitRun(radix: Int) -> String? {
            var digits = ""
            while let scalar = current, let digit = Int(String(scalar), radix: radix), digit >= 0 {
                digits.unicodeScalars.append(scalar)
                position += 1
                if current == "_" {
                    guard position + 1 < scalars.count, Int(String(scalars[position + 1]), radix: radix) != nil else { return nil }
                    position += 1
                }
            }
            return digits.isEmpty ? nil : digits
        }

        /// A number running straight into a name character is a syntax error or an attribute: not a literal.
        private var followedByName: Bool { current.map(PythonLiteral.isNameScalar) ?? false }
    }
}

extension PythonLiteral.Parsed {
    var isValue: Bool {
        if case .value = self { return true }
        return false
    }
}
