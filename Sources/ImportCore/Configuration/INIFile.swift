// Parses glance-api.conf-style INI files with oslo.config's syntax.
import Foundation

/// One `key = value` line of an INI file, remembered with where it came from so errors can point at it.
public struct INIEntry: Sendable, Equatable {
    public var key: String
    public var value: String
    public var file: String
    public var line: Int
}

/// The merged content of one or more oslo.config-style files: later files override earlier ones, key by key.
///
/// Syntax (as oslo.config's parser): `[section]` headers, `key = value` or `key: value`, comments starting
/// with `#` or `;` on their own line, continuation lines that start with white space, `[DEFAULT]` for the
/// default section. Section names are case-sensitive, keys are not (`-` and `_` are the same).
public struct INIFile: Sendable {
    private(set) var sections: [String: [String: INIEntry]] = [:]
    /// Section names in the order they first appeared, so that ordered rules (identity sections) keep file order.
    public private(set) var sectionOrder: [String] = []

    public init() {}

    /// Reads and merges `paths` in order.
    public init(paths: [String]) throws(ConfigurationError) {
        for path in paths {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw .unreadableFile(file: path, reason: Self.describe(error))
            }
            try merge(text: text, file: path)
        }
    }

    /// Parses `text` (as if read from `file`) and merges it over what is already here.
    public mutating func merge(text: String, file: String) throws(ConfigurationError) {
        var section: String?
        var lastKey: (section: String, key: String)?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = rawLine.hasSuffix("\r") ? String(rawLine.dropLast()) : String(rawLine)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                lastKey = nil
                continue
            }
            if trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if let first = line.first, first == " " || first == "\t", let (sec, key) = lastKey {
                // A continuation line: oslo.config joins it to the previous value with a newline.
                sections[sec]?[key]?.value += "\n" + trimmed
                continue
            }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else {
                    throw .malformedLine(file: file, line: lineNumber, reason: "a section header must look like [name]")
                }
                let name = String(trimmed.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else {
                    throw .malformedLine(file: file, line: lineNumber, reason: "the section name is empty")
                }
                section = name
                if sections[name] == nil {
                    sections[name] = [:]
                    sectionOrder.append(name)
                }
                lastKey = nil
                continue
            }
            guard let currentSection = section else {
                throw .malformedLine(file: file, line: lineNumber, reason: "an option appears before any [section] header")
            }
            guard let separator = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw .malformedLine(file: file, line: lineNumber, reason: "expected 'option = value'")
            }
            let key = Self.normalize(String(trimmed[..<separator]))
            guard !key.isEmpty else {
                throw .malformedLine(file: file, line: lineNumber, reason: "the option name is empty")
            }
            let value = String(trimmed[trimmed.index(after: separator)...]).trimmingCharacters(in: .whitespaces)
            sections[currentSection, default: [:]][key] = INIEntry(key: key, value: value, file: file, line: lineNumber)
            lastKey = (currentSection, key)
        }
    }

    /// The entry for `key` in `section`, if any file set it.
    public func entry(_ section: String, _ key: String) -> INIEntry? {
        sections[section]?[Self.normalize(key)]
    }

    static func normalize(_ key: String) -> String {
        key.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: "-", with: "_")
    }

    static func describe(_ error: any Error) -> String {
        if let posix = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError {
            return String(cString: strerror(Int32(posix.code)))
        }
        return (error as NSError).localizedDescription
    }
}
