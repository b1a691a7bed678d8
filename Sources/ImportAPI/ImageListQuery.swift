// `GET /v2/images`'s query as Glance reads it: property filters, sort keys and directions, limit and marker,
// and the `next` link of a full page. Every value it does not take is a 400 that says why, as in Glance.
import Foundation
import ImportCore

struct ImageListQuery {
    /// Glance's `limit_param_default` and `api_limit_max`.
    static let defaultLimit = 25
    static let maximumLimit = 1000
    /// The keys Glance sorts by.
    static let sortKeys = ["name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"]

    var limit = defaultLimit
    var marker: String?
    var sort: [(key: String, ascending: Bool)] = []
    var filters: [(key: String, value: String)] = []
    /// Hidden images are listed only when asked for (`os_hidden=true`), and then only they.
    var hidden = false
    private let items: [(name: String, value: String)]

    init(_ items: [(name: String, value: String)]) throws(ImageError) {
        self.items = items
        var keys: [String] = [], directions: [Bool] = []
        for (name, value) in items {
            switch name {
            case "limit":
                guard let number = Int(value), number >= 0 else { throw .badRequest("limit param must be an integer") }
                limit = min(number, Self.maximumLimit)
            case "marker": marker = value
            case "sort_key":
                guard Self.sortKeys.contains(value) else {
                    throw .badRequest("Invalid sort key: \(value). It must be one of the following: \(Self.sortKeys.joined(separator: ", ")).")
                }
                keys.append(value)
            case "sort_dir":
                guard value == "asc" || value == "desc" else { throw .badRequest("Invalid sort direction: \(value)") }
                directions.append(value == "asc")
            case "sort":
                for part in value.split(separator: ",") {
                    let pieces = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    guard let key = pieces.first, Self.sortKeys.contains(key) else {
                        throw .badRequest("Invalid sort key: \(pieces.first ?? ""). It must be one of the following: \(Self.sortKeys.joined(separator: ", ")).")
                    }
                    let direction = pieces.count > 1 ? pieces[1] : "desc"
                    guard direction == "asc" || direction == "desc" else { throw .badRequest("Invalid sort direction: \(direction)") }
                    sort.append((key, direction == "asc"))
                }
            case "os_hidden":
                guard let flag = ["true": true, "false": false][value.lowercased()] else {
                    throw .badRequest("Invalid value for os_hidden: \(value). It must be true or false.")
                }
                hidden = flag
            case "member_status":
                break  // Image members are not supported: every image a caller sees is its own, public or community.
            default:
                filters.append((name, value))
            }
        }
        if !keys.isEmpty {
            guard sort.isEmpty else { throw .badRequest("The 'sort' parameter cannot be combined with sort_key or sort_dir") }
            guard directions.count <= 1 || directions.count == keys.count else {
                throw .badRequest("the number of sort_dir values must be one or as many as sort_key values")
            }
            sort = keys.enumerated().map { index, key in (key, directions.count > index ? directions[index] : directions.first ?? false) }
        } else if let direction = directions.first {
            sort = [("created_at", direction)]
        }
        if sort.isEmpty { sort = [("created_at", false)] }
        // Glance adds id so pages never overlap or skip images that share a sort value.
        if !sort.contains(where: { $0.key == "id" }) { sort.append(("id", sort.last?.ascending ?? false)) }
    }

    /// This query without its marker: Glance's `first` link.
    var first: String { Self.link(items.filter { $0.name != "marker" }) }

    private static func link(_ items: [(name: String, value: String)]) -> String {
        guard !items.isEmpty else { return "/v2/images" }
        var components = URLComponents()
        components.queryItems = items.map { URLQueryItem(name: $0.name, value: $0.value) }
        return "/v2/images?" + (components.percentEncodedQuery ?? "")
    }

    /// One page of `images` (all the caller may see): filtered, sorted, after the marker; `next` when the page is full.
    func page(_ images: [Image]) throws(ImageError) -> (images: [Image], next: String?) {
        var matching: [Image] = []
        for image in images where try matches(image) { matching.append(image) }
        matching.sort { a, b in
            for (key, ascending) in sort {
                let order = Self.compare(a, b, by: key)
                if order != .orderedSame { return ascending ? order == .orderedAscending : order == .orderedDescending }
            }
            return false
        }
        var start = 0
        if let marker {
            guard let index = matching.firstIndex(where: { $0.id == marker }) else {
                throw .badRequest("Invalid marker. Image \(marker) could not be found.")
            }
            start = index + 1
        }
        let page = Array(matching.dropFirst(start).prefix(limit))
        guard limit > 0, page.count == limit, let last = page.last else { return (page, nil) }
        return (page, Self.link(items.filter { $0.name != "marker" } + [("marker", last.id)]))
    }

    private func matches(_ image: Image) throws(ImageError) -> Bool {
        if image.isHidden != hidden { return false }
        for (key, value) in filters {
            switch key {
            case "name": if image.name != value { return false }
            case "status": if image.status.rawValue != value.lowercased() { return false }
            case "visibility":
                guard ["public", "private", "shared", "community", "all"].contains(value) else {
                    throw .badRequest("Invalid visibility value: \(value)")
                }
                if value != "all", image.visibility != value { return false }
            case "owner": if image.owner != value { return false }
            case "disk_format": if image.diskFormat != value { return false }
            case "container_format": if image.containerFormat != value { return false }
            case "id": if image.id != value { return false }
            case "size_min", "size_max":
                guard let bound = Int64(value) else { throw .badRequest("\(key) must be an integer, not \(value)") }
                guard let size = image.size else { return false }
                if key == "size_min" ? size < bound : size > bound { return false }
            case "tag": if !image.tags.contains(value) { return false }
            default: if image.properties[key] != value { return false }
            }
        }
        return true
    }

    private static func compare(_ a: Image, _ b: Image, by key: String) -> ComparisonResult {
        func order<T: Comparable>(_ x: T?, _ y: T?) -> ComparisonResult {
            switch (x, y) {
            case let (x?, y?): return x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame
            case (nil, nil): return .orderedSame
            case (nil, _): return .orderedAscending
            case (_, nil): return .orderedDescending
            }
        }
        switch key {
        case "name": return order(a.name, b.name)
        case "status": return order(a.status.rawValue, b.status.rawValue)
        case "container_format": return order(a.containerFormat, b.containerFormat)
        case "disk_format": return order(a.diskFormat, b.diskFormat)
        case "size": return order(a.size, b.size)
        case "created_at": return order(a.createdAt, b.createdAt)
        case "updated_at": return order(a.updatedAt, b.updatedAt)
        default: return order(a.id, b.id)
        }
    }
}
