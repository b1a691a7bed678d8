// Reads a policy file (YAML, or JSON, which is YAML) into rule texts by name, keeping each rule's line.
import Foundation
import Yams

/// The rules a policy file sets, and those it sets to something that does not parse.
struct PolicyFile {
    struct Broken {
        var name: String
        var line: Int?
        var error: PolicyParseError
    }

    var texts: [String: String] = [:]
    var broken: [Broken] = []

    static func load(_ file: String) throws(PolicyFileError) -> PolicyFile {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw .unreadable(file: file, reason: (error as NSError).localizedDescription)
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw .malformed(file: file, reason: "\(error)") }
        guard let root, root.tag.description != Tag.Name.null.rawValue else { return PolicyFile() }  // an empty file sets nothing, as in oslo.policy
        guard let mapping = root.mapping else { throw .malformed(file: file, reason: "the top level is not a mapping") }
        var result = PolicyFile()
        for (key, value) in mapping {
            guard key.tag.description == Tag.Name.str.rawValue, let name = key.string else { continue }
            let line = key.mark?.line
            result.broken.removeAll { PythonText.equal($0.name, name) }  // a later duplicate wins, as in PyYAML
            guard value.tag.description == Tag.Name.str.rawValue, let rule = value.string else {
                result.texts[name] = nil
                result.broken.append(Broken(name: name, line: line, error: .notText(value.tag.description)))
                continue
            }
            result.texts[name] = rule
            do throws(PolicyParseError) { _ = try PolicyParser.parse(rule) } catch {
                result.broken.append(Broken(name: name, line: line, error: error))
            }
        }
        return result
    }
}
