// Python's string semantics that oslo.policy's decisions depend on: which characters split, lower(), and equality.

/// The Python (CPython 3.11, Unicode 14.0) string behaviour oslo.policy relies on, reproduced on Unicode scalars.
enum PythonText {
    /// The Unicode version of the Python that Glance 33 runs on (Debian 12's 3.11); newer characters are unassigned there.
    static let unicodeVersion = (major: 14, minor: 0)

    /// `str.isspace()`, which is also what the tokenizer's `\s` matches: these and nothing else split a rule.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// Python equality: the same code points (Swift's `==` would also equate canonically equivalent strings).
    static func equal(_ left: String, _ right: String) -> Bool {
        left.unicodeScalars.elementsEqual(right.unicodeScalars)
    }

    /// `str.lower()`: each scalar's full lower-case mapping, and Greek capital sigma as final sigma where Python uses it.
    static func lower(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        for (index, scalar) in scalars.enumerated() {
            if scalar.value == 0x3A3 {
                result.append(finalSigma(scalars, at: index) ? "\u{3C2}" : "\u{3C3}")
            } else if known(scalar) {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }

    /// CPython's Final_Sigma test: a cased letter before (skipping case-ignorables) and none after.
    private static func finalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var before = index - 1
        while before >= 0, caseIgnorable(scalars[before]) { before -= 1 }
        guard before >= 0, cased(scalars[before]) else { return false }
        var after = index + 1
        while after < scalars.count, caseIgnorable(scalars[after]) { after += 1 }
        return after == scalars.count || !cased(scalars[after])
    }

    private static func cased(_ scalar: Unicode.Scalar) -> Bool { known(scalar) && scalar.properties.isCased }
    private static func caseIgnorable(_ scalar: Unicode.Scalar) -> Bool { known(scalar) && scalar.properties.isCaseIgnorable }

    /// Assigned in Python's Unicode database (characters added later have no case there).
    private static func known(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return (age.major, age.minor) <= unicodeVersion
    }
}
