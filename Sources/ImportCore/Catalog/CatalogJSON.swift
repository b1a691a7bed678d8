// How string dictionaries (image properties, task input and result) are stored in a text column, by every catalog.
import Foundation

/// The JSON text of the catalogs' dictionary columns: sorted keys, so equal dictionaries are equal text.
public enum CatalogJSON {
    public static func encode(_ dictionary: [String: String]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: dictionary, options: [.sortedKeys]), as: UTF8.self)) ?? "{}"
    }

    public static func encode(_ list: [String]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: list), as: UTF8.self)) ?? "[]"
    }

    public static func decodeList(_ text: String) -> [String] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String]) ?? []
    }

    /// A column that is not a JSON object of strings reads as empty rather than failing the whole listing.
    public static func decode(_ text: String) -> [String: String] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]) ?? [:]
    }
}
