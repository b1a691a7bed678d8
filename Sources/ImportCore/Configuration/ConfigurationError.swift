// Errors in configuration files and values, worded so an operator can fix them.

/// What is wrong with the configuration, always naming the file, line and option when there is one.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case unreadableFile(file: String, reason: String)
    case malformedLine(file: String, line: Int, reason: String)
    case invalidValue(option: String, value: String, file: String?, line: Int?, expected: String)
    case missingOption(option: String, hint: String)
    case unknownUser(option: String, name: String, file: String?, line: Int?)

    public var description: String {
        switch self {
        case let .unreadableFile(file, reason):
            return "cannot read configuration file \(file): \(reason)"
        case let .malformedLine(file, line, reason):
            return "\(file):\(line): \(reason)"
        case let .invalidValue(option, value, file, line, expected):
            return "\(Self.place(file, line))invalid value '\(value)' for option \(option): expected \(expected)"
        case let .missingOption(option, hint):
            return "option \(option) is not set: \(hint)"
        case let .unknownUser(option, name, file, line):
            return "\(Self.place(file, line))option \(option) names '\(name)', which is not a user or group on this host: create it or fix the name"
        }
    }

    private static func place(_ file: String?, _ line: Int?) -> String {
        guard let file else { return "" }
        if let line { return "\(file):\(line): " }
        return "\(file): "
    }
}
