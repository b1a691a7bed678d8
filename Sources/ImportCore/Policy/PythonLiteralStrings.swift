// String and bytes literals for the literal parser: prefixes, quotes, escapes, and adjacent literals joined.

extension PythonLiteral.Parser {
    /// One or more adjacent string literals (`'a''b'` is `'ab'`); str and bytes cannot be mixed.
    mutating func strings(prefixLength: Int) -> PythonLiteral.Parsed {
        var text = String.UnicodeScalarView()
        var bytes: [UInt8] = []
        var isBytes: Bool?
        var length = prefixLength
        repeat {
            let prefix = String(String.UnicodeScalarView(scalarsAhead(length))).lowercased()
            guard ["", "r", "u", "b", "br", "rb"].contains(prefix) else { return .notLiteral }
            let raw = prefix.contains("r"), bytesLiteral = prefix.contains("b")
            if let isBytes, isBytes != bytesLiteral { return .syntaxError("cannot mix bytes and nonbytes literals") }
            isBytes = bytesLiteral
            skip(length)
            switch body(raw: raw, bytes: bytesLiteral) {
            case let .failure(failure): return failure.parsed
            case let .success(scalars):
                if bytesLiteral { bytes += scalars.map { UInt8($0.value) } } else { text.append(contentsOf: scalars) }
            }
            length = nextPrefixLength()
        } while length >= 0
        return .value(isBytes == true ? .bytes(bytes) : .text(String(text)))
    }

    /// The length of the prefix of another string literal starting here, or -1 when none does.
    private func nextPrefixLength() -> Int {
        var length = 0
        while let scalar = peek(length), PythonLiteral.isNameScalar(scalar) { length += 1 }
        guard let quote = peek(length), quote == "'" || quote == "\"" else { return -1 }
        return length
    }

    private struct Failure: Error { let parsed: PythonLiteral.Parsed }

    /// A quoted body with its escapes resolved, as Python 3.11 does (unknown escapes stay as written).
    private mutating func body(raw: Bool, bytes: Bool) -> Result<[Unicode.Scalar], Failure> {
        func fail(_ reason: String) -> Result<[Unicode.Scalar], Failure> { .failure(Failure(parsed: .syntaxError(reason))) }
        func unsupported() -> Result<[Unicode.Scalar], Failure> { .failure(Failure(parsed: .notLiteral)) }
        guard let quote = peek(0) else { return unsupported() }
        let triple = peek(1) == quote && peek(2) == quote
        skip(triple ? 3 : 1)
        var out: [Unicode.Scalar] = []
        while true {
            guard let scalar = peek(0) else { return fail("unterminated string literal") }
            if scalar == quote, !triple || (peek(1) == quote && peek(2) == quote) {
                skip(triple ? 3 : 1)
                return .success(out)
            }
            if bytes, !scalar.isASCII { return fail("bytes can only contain ASCII literal characters") }
            skip(1)
            guard scalar == "\\" else { out.append(scalar); continue }
            guard let escaped = peek(0) else { return fail("unterminated string literal") }
            if bytes, !escaped.isASCII { return fail("bytes can only contain ASCII literal characters") }
            skip(1)
            if raw { out += ["\\", escaped]; continue }
            switch escaped {
            case "\\", "'", "\"": out.append(escaped)
            case "a": out.append("\u{7}")
            case "b": out.append("\u{8}")
            case "f": out.append("\u{C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{B}")
            case "0"..."7":
                var value = Int(escaped.value - 0x30)
                for _ in 0..<2 {
                    guard let next = peek(0), ("0"..."7").contains(next) else { break }
                    value = value * 8 + Int(next.value - 0x30)
                    skip(1)
                }
                guard !bytes || value < 256, let decoded = Unicode.Scalar(value) else { return unsupported() }
                out.append(decoded)
            case _ where escaped == "x" || (!bytes && (escaped == "u" || escaped == "U")):  // \u and \U are str-only
                let count = escaped == "x" ? 2 : escaped == "u" ? 4 : 8
                let hex = String(String.UnicodeScalarView(scalarsAhead(count)))
                guard hex.unicodeScalars.count == count, hex.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit),
                    let value = UInt32(hex, radix: 16)
                else { return fail("truncated \\\(escaped) escape") }
                skip(count)
                guard value <= 0x10FFFF else { return fail("illegal Unicode character") }
                guard let decoded = Unicode.Scalar(value) else { return unsupported() }  // a lone surrogate
                out.append(decoded)
            case "N" where !bytes: return unsupported()
            default: out += ["\\", escaped]
            }
        }
    }
}
