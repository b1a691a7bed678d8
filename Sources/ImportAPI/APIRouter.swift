// Glance v2 paths for the import subset, each mapped to one ImportController call.
import Foundation
import GlanceModels
import ImportCore
import Logging

struct APIRouter: Sendable {
    let controller: ImportController
    let logger: Logger

    private var importEnabled: Bool { controller.configuration.imports.enableImageImport }

    /// The answer to one request, as sent: errors in the form the client accepts, with a request id.
    func respond(to head: APIRequest, body: some APIRequestBody, caller: Caller) -> APIResponse {
        route(head, body, caller).negotiated(for: head)
    }

    private func route(_ head: APIRequest, _ body: some APIRequestBody, _ caller: Caller) -> APIResponse {
        let path = head.path
        let parts = path.split(separator: "/").map(String.init)
        let who = controller.staging.identify(caller)
        do {
            let route = Route(method: head.method, parts: parts)
            let host = head.header("Host") ?? "localhost"
            if route.matches("GET", "") { return .encoded(300, GlanceJSON.versions(importEnabled: importEnabled, host: host)) }
            if route.matches("GET", "versions") { return .encoded(200, GlanceJSON.versions(importEnabled: importEnabled, host: host)) }
            if route.matches("GET", "v2/images") {
                let query = try ImageListQuery(head.queryItems)
                let (page, next) = try query.page(try controller.images(for: who))
                return .encoded(200, GlanceImageList(images: page.map(GlanceJSON.image), first: query.first, next: next))
            }
            if route.matches("POST", "v2/images") {
                let image = try controller.createImage(try creation(try jsonObject(head, body)), by: who)
                var response = APIResponse.encoded(201, GlanceJSON.image(image))
                response.headers.append(("Location", "\(head.scheme)://\(host)/v2/images/\(image.id)"))
                // openstacksdk takes --import only when the create response lists the methods.
                if importEnabled { response.headers.append(("OpenStack-image-import-methods", controller.importMethods().joined(separator: ","))) }
                if let stores = controller.configuration.imports.stores { response.headers.append(("OpenStack-image-store-ids", stores.defaultBackend)) }
                return response
            }
            if route.matches("GET", "v2/info/stores") {
                try controller.requireKnown(who)
                guard let stores = controller.configuration.imports.stores else { return .error(404, "Multi backend is not supported at this site.") }
                var store: [String: Any] = ["id": stores.defaultBackend, "default": true]
                if let description = stores.description { store["description"] = description }
                return .json(200, ["stores": [store]])
            }
            if let name = route.capture("GET", "v2/schemas/*") {
                guard let schema = GlanceSchemas.named(name) else { return .error(404, "no schema named \(name): there are image, images, task and tasks") }
                return .json(200, schema)
            }
            if let id = route.capture("GET", "v2/images/*") { return .encoded(200, GlanceJSON.image(try controller.image(id, for: who))) }
            if let id = route.capture("PATCH", "v2/images/*") {
                // Glance reads the media type before anything else: another one is a 415 naming the two it takes.
                let mediaType = head.header("Content-Type")?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                guard let format = Self.patchFormats[mediaType] else {
                    var refused = APIResponse.error(
                        415,
                        "The request media type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported by this server. Image PATCH expects Content-Type one of: \(Self.patchFormats.keys.sorted().joined(separator: ", "))"
                    )
                    refused.headers.append(("Accept-Patch", Self.patchFormats.keys.sorted().joined(separator: ", ")))
                    return refused
                }
                return .encoded(200, GlanceJSON.image(try controller.updateImage(id, try patches(body, format: format), by: who)))
            }
            if let id = route.capture("DELETE", "v2/images/*") {
                try controller.deleteImage(id, by: who)
                return .empty(204)
            }
            if let id = route.capture("GET", "v2/images/*/file") { return try download(id, who) }
            if let id = route.capture("PUT", "v2/images/*/file") {
                try controller.checkUploadable(id, by: who)
                let staged = try stage(id, head, body, caller)
                guard staged.status == 204 else { return staged }
                _ = try controller.importImage(id, method: "glance-direct", by: who, stagingAs: caller)
                _ = try controller.awaitImport(id, by: who)
                return .empty(204)
            }
            if let id = route.capture("GET", "v2/images/*/tasks") {
                let tasks = try controller.tasks(ofImage: id, for: who).map { task in
                    var shown = GlanceJSON.task(task)
                    shown.listedForImage = true
                    return shown
                }
                return .encoded(200, GlanceTaskList(tasks: tasks))
            }
            if route.matches("GET", "v2/info/stagingfs") {
                try controller.requireKnown(who)
                // Ours: where the staging mount is, so importctl can stage through it when the caller can reach it.
                let configuration = controller.configuration
                return .encoded(
                    200,
                    StagingInfo(
                        mountpoint: configuration.mountpoint ?? configuration.backingDirectory,
                        hashingAlgorithm: configuration.hashingAlgorithm.rawValue, hashOnWrite: configuration.hashOnWrite))
            }
            if route.matches("POST", "v2/stagingfs/policy-check") { return try policyCheck(head, body, who) }
            if route.matches("GET", "v2/stagingfs/nodes") {
                return .encoded(200, StagingNodeList(nodes: try controller.nodes(for: who).map(GlanceJSON.node)))
            }
            if route.matches("GET", "v2/tasks") {
                let tasks = try controller.tasks(for: who).map(GlanceJSON.task)
                return .encoded(200, GlanceTaskList(tasks: tasks, first: "/v2/tasks", schema: "/v2/schemas/tasks"))
            }
            if let id = route.capture("GET", "v2/tasks/*") { return .encoded(200, GlanceJSON.task(try controller.task(id, for: who))) }
            // The import calls exist only while import is enabled (enable_image_import), as in Glance.
            if importEnabled {
                if let id = route.capture("PUT", "v2/images/*/stage") { return try stage(id, head, body, caller) }
                if let id = route.capture("POST", "v2/images/*/import") {
                    let request = try jsonObject(head, body)
                    let requested = request["method"] as? [String: Any]
                    guard let method = requested?["name"] as? String else {
                        throw ImageError.badRequest(
                            "the body must be {\"method\": {\"name\": \"glance-direct\"}} or {\"method\": {\"name\": \"web-download\", \"uri\": \"…\"}}")
                    }
                    // Multi-store clients name the stores to import into: here there is one, the default backend.
                    if let stores = request["stores"] as? [String], let configured = controller.configuration.imports.stores,
                        let other = stores.first(where: { $0 != configured.defaultBackend })
                    {
                        throw ImageError.badRequest("Store \(other) is not available: StagingFS stores images only in \(configured.defaultBackend)")
                    }
                    let task = try controller.importImage(id, method: method, uri: requested?["uri"] as? String, by: who, stagingAs: caller)
                    return APIResponse(status: 202, body: Data(), headers: [("X-StagingFS-Task-ID", task.id)])
                }
                if route.matches("GET", "v2/info/import") {
                    try controller.requireKnown(who)
                    return .encoded(200, GlanceImportInfo(methods: controller.importMethods()))
                }
            }
            if let allowed = Route.allowedMethods(parts, importEnabled: importEnabled) {
                var response = APIResponse.error(405, "The method \(head.method) is not allowed for \(path); use \(allowed.joined(separator: ", "))")
                response.headers.append(("Allow", allowed.joined(separator: ", ")))
                return response
            }
            return .error(404, "no resource at \(head.method) \(path)")
        } catch let error as ImageError {
            return .error(error.httpStatus, error.description)
        } catch let error as RequestBodyError {
            return .error(400, "the request could not be read: \(error)")
        } catch {
            logger.error("API request failed", metadata: ["api.path": "\(path)", "error": "\(error)"])
            return .error(500, "internal error: \(error)")
        }
    }

    /// The stored image, streamed by the server, with Glance's `Content-MD5` (the hex md5); 204 while it has none.
    private func download(_ id: String, _ who: CallerIdentity) throws -> APIResponse {
        guard case let .stored(file, size, checksum) = try controller.imageData(id, for: who) else { return .empty(204) }
        var response = APIResponse(status: 200, body: Data(), contentType: "application/octet-stream")
        response.file = (file, size)
        if let checksum { response.headers.append(("Content-MD5", checksum)) }
        return response
    }

    /// Streams the body through the staging write path (hashed as it arrives), like a copy into the mount.
    private func stage(_ id: String, _ head: APIRequest, _ body: some APIRequestBody, _ caller: Caller) throws -> APIResponse {
        let handle = try controller.beginStage(id, caller: caller)
        var offset: Int64 = 0
        var failure: String?
        var status = 400
        do {
            try body.stream { chunk in
                offset += Int64(try controller.staging.write(handle, chunk, at: offset))
            }
        } catch let error as StagingError {
            failure = error.description
            status = error.stageStatus
        } catch {
            failure = "\(error)"
        }
        do {
            try controller.finishStage(id, handle: handle, complete: failure == nil, failure: failure)
        } catch {
            return .error(status, error.description)
        }
        return .empty(204)
    }

    /// Ours: `{"action": …, "as": user name or uid (optional), "target": {…}}` → the decision and the rule that made it.
    private func policyCheck(_ head: APIRequest, _ body: some APIRequestBody, _ who: CallerIdentity) throws -> APIResponse {
        let data = try body.readAll(limit: 1 << 20)
        let request: PolicyCheckRequest
        do { request = try GlanceCoding.decode(PolicyCheckRequest.self, from: data) } catch {
            throw ImageError.badRequest("the body must be {\"action\": \"…\", \"target\": {\"key\": \"text\", …}, \"as\": \"user\"} (target and as optional)")
        }
        guard !request.action.isEmpty else { throw ImageError.badRequest("the body needs an action") }
        var subject = who
        if let name = request.user {
            guard let caller = SystemAccounts.caller(forUser: name) else { throw ImageError.badRequest("no user '\(name)' on this host") }
            subject = controller.staging.identify(caller)
        }
        let decision = try controller.checkPolicy(request.action, as: subject, target: request.target, by: who)
        return .encoded(
            200,
            PolicyCheckDecision(
                action: request.action, allowed: decision.allowed, rule: decision.ruleName,
                ruleText: decision.ruleText, identity: "\(subject)", target: request.target))
    }

    private func jsonObject(_ head: APIRequest, _ body: some APIRequestBody) throws -> [String: Any] {
        let data = try body.readAll(limit: 1 << 20)
        guard let object = try? JSONSerialization.jsonObject(with: data.isEmpty ? Data("{}".utf8) : data) as? [String: Any] else {
            throw ImageError.badRequest("the body is not a JSON object")
        }
        return object
    }
}

/// Matches a request against a path pattern in which `*` captures one segment.
struct Route {
    /// Each path the API serves and its methods, for Glance's 405 (with `Allow`) on a path that exists.
    static let methods: [(pattern: String, methods: [String])] = [
        ("v2/images", ["GET", "POST"]), ("v2/images/*", ["GET", "PATCH", "DELETE"]), ("v2/images/*/tasks", ["GET"]),
        ("v2/images/*/file", ["GET", "PUT"]),
        ("v2/tasks", ["GET"]), ("v2/tasks/*", ["GET"]), ("v2/schemas/*", ["GET"]), ("v2/info/stagingfs", ["GET"]), ("v2/info/stores", ["GET"]),
        ("v2/stagingfs/nodes", ["GET"]), ("v2/stagingfs/policy-check", ["POST"]), ("versions", ["GET"]),
    ]
    static let importMethods: [(pattern: String, methods: [String])] = [
        ("v2/images/*/stage", ["PUT"]), ("v2/images/*/import", ["POST"]), ("v2/info/import", ["GET"]),
    ]

    /// The methods of the path `parts` names, if the API serves it at all.
    static func allowedMethods(_ parts: [String], importEnabled: Bool) -> [String]? {
        let table = importEnabled ? methods + importMethods : methods
        return table.first { entry in
            let segments = entry.pattern.split(separator: "/").map(String.init)
            return segments.count == parts.count && zip(segments, parts).allSatisfy { $0 == "*" || $0 == $1 }
        }?.methods
    }

    let method: String
    let parts: [String]

    func matches(_ method: String, _ pattern: String) -> Bool { capture(method, pattern, all: true) != nil }

    func capture(_ method: String, _ pattern: String) -> String? { capture(method, pattern, all: false) }

    private func capture(_ method: String, _ pattern: String, all: Bool) -> String? {
        let segments = pattern.split(separator: "/").map(String.init)
        guard method == self.method, segments.count == parts.count else { return nil }
        var captured: String?
        for (segment, part) in zip(segments, parts) {
            if segment == "*" { captured = part } else if segment != part { return nil }
        }
        return all ? "" : captured
    }
}
