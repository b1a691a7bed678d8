// `importctl`: create images, stage, import and follow tasks through the StagingFS API (like `glance`).
import ArgumentParser
import Foundation
import GlanceModels
import SystemPackage

@main
struct ImportCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "importctl",
        abstract: "Trigger and follow Glance-style image imports through a stagingfs daemon.",
        discussion:
            "Exit codes: 0 ok, 1 other failure, 3 daemon (or Keystone) unreachable, 4 not found, 5 forbidden, 6 conflict, 7 bad request, 8 import failed, 9 server error, 10 timed out, 64 usage error.",
        subcommands: [
            Versions.self, ImportInfo.self, ImageCreate.self, ImageList.self, ImageShow.self, ImageDelete.self, Stage.self, Import.self,
            ImageCreateViaImport.self, TaskList.self, TaskShow.self, PolicyCheck.self, NodeList.self,
        ])
}

let imageColumns = ["id", "name", "status", "disk_format", "container_format", "size", "owner"]
let taskColumns = ["id", "image_id", "status", "owner", "updated_at", "message"]

extension ImportCtl {
    struct Versions: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the API versions the daemon offers (GET /versions).")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try perform {
                let versions = try options.client.expect("GET", "/versions").decoded(GlanceVersionList.self).versions.map(Output.object)
                options.json ? Output.json(versions) : Output.table(["id", "status"], versions)
            }
        }
    }

    struct ImportInfo: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "import-info", abstract: "List the enabled import methods (GET /v2/info/import).")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try perform {
                let reply = try options.client.expect("GET", "/v2/info/import").decoded(GlanceImportInfo.self)
                if options.json { return Output.json(Output.object(reply)) }
                print("import methods: \(reply.importMethods.value.joined(separator: ", "))")
            }
        }
    }

    struct ImageCreate: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "image-create", abstract: "Create an image record (POST /v2/images).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var image: ImageOptions

        func run() throws {
            try perform {
                let created = Output.object(try options.client.expect("POST", "/v2/images", json: try image.body()).decoded(GlanceImage.self))
                options.json ? Output.json(created) : Output.properties(created)
            }
        }
    }

    struct ImageList: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "image-list", abstract: "List the images you may see (GET /v2/images).")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try perform {
                // Every page, as glance image-list shows them: the API answers a page at a time (its `next` link).
                var images: [GlanceImage] = []
                var page: String? = "/v2/images?limit=1000"
                var seen: Set<String> = []
                while let path = page, seen.insert(path).inserted {
                    let list = try options.client.expect("GET", path).decoded(GlanceImageList.self)
                    images += list.images
                    page = list.images.isEmpty ? nil : list.next
                }
                let shown = images.map(Output.object)
                options.json ? Output.json(shown) : Output.table(imageColumns, shown)
            }
        }
    }

    struct ImageShow: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "image-show", abstract: "Show one image (GET /v2/images/{id}).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The image's ID.") var id: String

        func run() throws {
            try perform {
                let image = Output.object(try options.client.expect("GET", "/v2/images/\(id)").decoded(GlanceImage.self))
                options.json ? Output.json(image) : Output.properties(image)
            }
        }
    }

    struct ImageDelete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "image-delete", abstract: "Delete an image and its staged data (DELETE /v2/images/{id}).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The image's ID.") var id: String

        func run() throws {
            try perform {
                _ = try options.client.expect("DELETE", "/v2/images/\(id)")
                if !options.json { print("deleted \(id)") }
            }
        }
    }

    struct Stage: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload a file as an image's staged data through the API (PUT /v2/images/{id}/stage).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The image's ID.") var id: String
        @Option(help: "The image file to stage.") var file: String

        func run() throws {
            try perform { try stageThroughAPI(options.client, id: id, file: file, quiet: options.json) }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import an image's staged data, or fetch it from a URI first (POST /v2/images/{id}/import).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The image's ID.") var id: String
        @Option(help: "The import method: glance-direct, or web-download with --uri.") var method = "glance-direct"
        @Option(help: "For web-download: the http(s) URI to fetch the image from.") var uri: String?

        func validate() throws {
            if method == "web-download", uri == nil { throw ValidationError("web-download needs --uri") }
            if method != "web-download", uri != nil { throw ValidationError("--uri is for --method web-download") }
        }
        @Flag(help: "Wait until the import task ends, showing progress.") var wait = false
        @Option(help: "Seconds to wait at most, with --wait.") var timeout: Double = 3600

        func run() throws {
            try perform {
                let task = try startImport(options.client, id: id, method: method, uri: uri)
                guard wait else {
                    options.json ? Output.json(["task_id": task]) : print("import accepted: task \(task)")
                    return
                }
                let image = try waitForImport(options.client, id: id, task: task, timeout: timeout)
                options.json ? Output.json(image) : Output.properties(image)
            }
        }
    }

    struct ImageCreateViaImport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image-create-via-import",
            abstract: "Create an image, stage a file (through the mount when you can reach it, else the API), import it and wait.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var image: ImageOptions
        @Option(help: "The image file.") var file: String
        @Option(help: "How to stage: auto (the mount if reachable), mount, or api.") var via = "auto"
        @Option(help: "Seconds to wait for the import at most.") var timeout: Double = 3600

        func validate() throws {
            guard ["auto", "mount", "api"].contains(via) else { throw ValidationError("--via must be auto, mount or api") }
            guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file)") }
        }

        func run() throws {
            try perform {
                let client = try options.client
                // Said before anything is created, so that a refused --via leaves no queued image behind.
                if via == "mount", !client.transport.isLocal {
                    throw ClientFailure(
                        exit: .failure,
                        description: "--via mount needs the daemon's staging mount on this host; over TCP (OS_IMAGE_URL) stage with --via api or auto")
                }
                var body = try image.body()
                body.diskFormat = body.diskFormat ?? "raw"
                body.containerFormat = body.containerFormat ?? "bare"
                let id = try client.expect("POST", "/v2/images", json: body).decoded(GlanceImage.self).id
                if !options.json { FileHandle.standardError.write(Data("created image \(id)\n".utf8)) }
                try stage(client, id: id)
                let task = try startImport(client, id: id, method: "glance-direct")
                let done = try waitForImport(client, id: id, task: task, timeout: timeout)
                options.json ? Output.json(done) : Output.properties(done)
            }
        }

        private func stage(_ client: APIClient, id: String) throws {
            // Over TCP the daemon's staging mount is on its host, not here.
            guard client.transport.isLocal else { return try stageThroughAPI(client, id: id, file: file, quiet: options.json) }
            // A daemon that does not say where its mount is gets the upload through the API.
            let info = try? client.expect("GET", "/v2/info/stagingfs").decoded(StagingInfo.self)
            if via != "api", let mountpoint = info?.mountpoint, access(mountpoint, W_OK) == 0 {
                do {
                    try copyIntoMount(file: file, destination: mountpoint + "/" + id, quiet: options.json)
                    return
                } catch  where via == "auto" {
                    FileHandle.standardError.write(Data("importctl: staging through the mount failed (\(error)); using the API\n".utf8))
                }
            } else if via == "mount" {
                throw ClientFailure(exit: .failure, description: "the staging mount is not reachable from here; use --via api")
            }
            try stageThroughAPI(client, id: id, file: file, quiet: options.json)
        }
    }

    struct TaskList: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "task-list", abstract: "List tasks (GET /v2/tasks, admins), or an image's (GET /v2/images/{id}/tasks).")
        @OptionGroup var options: GlobalOptions
        @Option(help: "Only this image's import tasks (allowed to whoever may see the image).") var image: String?

        func run() throws {
            try perform {
                let path = image.map { "/v2/images/\($0)/tasks" } ?? "/v2/tasks"
                let tasks = try options.client.expect("GET", path).decoded(GlanceTaskList.self).tasks.map(Output.object)
                options.json ? Output.json(tasks) : Output.table(taskColumns, tasks)
            }
        }
    }

    struct NodeList: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "node-list",
            abstract: "List the nodes sharing this staging area: id, host, mountpoint, last heartbeat, up/down, tasks held (admins).")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try perform {
                let nodes = try options.client.expect("GET", "/v2/stagingfs/nodes").decoded(StagingNodeList.self).nodes.map(Output.object)
                options.json ? Output.json(nodes) : Output.table(["id", "host", "mountpoint", "heartbeat_at", "status", "tasks"], nodes)
            }
        }
    }

    struct TaskShow: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "task-show", abstract: "Show one task (GET /v2/tasks/{id}, admins).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The task's ID.") var id: String

        func run() throws {
            try perform {
                let task = Output.object(try options.client.expect("GET", "/v2/tasks/\(id)").decoded(GlanceTask.self))
                options.json ? Output.json(task) : Output.properties(task)
            }
        }
    }
}

extension ImportCtl {
    struct PolicyCheck: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "policy-check",
            abstract: "Ask the daemon's policy whether an action is allowed, and which rule decides (exit 0 allow, 5 deny).",
            discussion: "Example: importctl policy-check upload_image --as alice --target project_id=6f7c… --target visibility=private")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The policy name (add_image, get_image, upload_image, tasks_api_access, …).") var action: String
        @Option(name: .customLong("as"), help: "Check as this user (name or uid) instead of yourself; admins only.") var user: String?
        @Option(name: .customLong("target"), help: "A target attribute as key=value (project_id, owner, visibility…); repeat for more.")
        var targets: [String] = []

        func run() throws {
            try perform {
                var target: [String: String] = [:]
                for pair in targets {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw ClientFailure(exit: .badRequest, description: "--target takes key=value, not '\(pair)'") }
                    target[parts[0]] = parts[1]
                }
                let request = PolicyCheckRequest(action: action, target: target, user: user)
                let decision = try options.client.expect("POST", "/v2/stagingfs/policy-check", json: request).decoded(PolicyCheckDecision.self)
                if options.json {
                    Output.json(Output.object(decision))
                } else {
                    print("\(decision.allowed ? "allow" : "deny"): \(action) for \(decision.identity)")
                    print("decided by rule \(decision.rule): \"\(decision.ruleText)\"")
                }
                if !decision.allowed { throw ExitCode(CtlExit.forbidden.rawValue) }
            }
        }
    }
}

/// The image fields image-create and image-create-via-import take.
struct ImageOptions: ParsableArguments {
    @Option(help: "The image's name.") var name: String?
    @Option(help: "disk_format (raw, qcow2, vmdk, …).") var diskFormat: String?
    @Option(help: "container_format (bare, ovf, …).") var containerFormat: String?
    @Option(help: "visibility: private, shared, community or public.") var visibility: String?
    @Flag(help: "Protect the image from deletion.") var protected = false
    @Option(name: .customLong("property"), help: "A property as key=value; repeat for more.") var properties: [String] = []

    func body() throws -> GlanceImageCreation {
        var body = GlanceImageCreation(
            name: name, diskFormat: diskFormat, containerFormat: containerFormat, visibility: visibility,
            isProtected: protected ? true : nil)
        for property in properties {
            let parts = property.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--property takes key=value, not '\(property)'") }
            body.properties[parts[0]] = parts[1]
        }
        return body
    }
}

// MARK: - The steps commands share

func stageThroughAPI(_ client: APIClient, id: String, file: String, quiet: Bool) throws {
    let descriptor: FileDescriptor
    do { descriptor = try FileDescriptor.open(file, .readOnly) } catch {
        throw ClientFailure(exit: .failure, description: "cannot open \(file): \(error)")
    }
    defer { try? descriptor.close() }
    let size = (try? descriptor.seek(offset: 0, from: .end)) ?? 0
    let bar = ProgressBar("staging", total: size)
    let reply = try client.send("PUT", "/v2/images/\(id)/stage", file: descriptor, fileSize: size) { bar.update($0) }
    bar.finish()
    try APIClient.check(reply)
    if !quiet { FileHandle.standardError.write(Data("staged \(size) bytes for image \(id) through the API\n".utf8)) }
}

/// Copies a file into the staging mount as `<mount>/<image_id>`: the mount hashes it as it arrives.
func copyIntoMount(file: String, destination: String, quiet: Bool) throws {
    let source = try FileDescriptor.open(file, .readOnly)
    defer { try? source.close() }
    let target = try FileDescriptor.open(destination, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead])
    let size = (try? source.seek(offset: 0, from: .end)) ?? 0
    let bar = ProgressBar("staging", total: size)
    var offset: Int64 = 0
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    do {
        while true {
            let count = try chunk.withUnsafeMutableBytes { try source.read(fromAbsoluteOffset: offset, into: $0) }
            if count == 0 { break }
            _ = try chunk.withUnsafeBytes { try target.writeAll(toAbsoluteOffset: offset, UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            offset += Int64(count)
            bar.update(offset)
        }
    } catch {
        try? target.close()
        throw error
    }
    try target.close()
    bar.finish()
    if !quiet { FileHandle.standardError.write(Data("staged \(offset) bytes through the mount at \(destination)\n".utf8)) }
}

func startImport(_ client: APIClient, id: String, method: String, uri: String? = nil) throws -> String {
    let reply = try client.expect("POST", "/v2/images/\(id)/import", json: GlanceImportRequest(method: method, uri: uri))
    return reply.header("X-StagingFS-Task-ID") ?? ""
}

/// Polls the image's tasks until `task` ends; returns the image, or fails with the task's message.
func waitForImport(_ client: APIClient, id: String, task: String, timeout: Double) throws -> [String: Any] {
    let deadline = Date().addingTimeInterval(timeout)
    var bar: ProgressBar?
    var pollInterval: UInt32 = 2_000
    while Date() < deadline {
        let tasks = try client.expect("GET", "/v2/images/\(id)/tasks").decoded(GlanceTaskList.self).tasks
        if let current = tasks.first(where: { $0.id == task }) {
            let total = current.progress.bytesTotal
            if bar == nil, total > 0 { bar = ProgressBar("importing", total: total) }
            bar?.update(current.progress.bytesDone)
            switch current.status {
            case "success":
                bar?.update(total)
                bar?.finish()
                return Output.object(try client.expect("GET", "/v2/images/\(id)").decoded(GlanceImage.self))
            case "failure":
                bar?.finish()
                throw ClientFailure(exit: .importFailed, description: "import task \(task) failed: \(current.message)")
            default: break
            }
        }
        // Same-filesystem imports end in milliseconds: poll fast at first, then back off to 200 ms.
        usleep(pollInterval)
        pollInterval = min(pollInterval * 2, 200_000)
    }
    throw ClientFailure(
        exit: .timedOut, description: "import task \(task) did not end within \(Int(timeout)) s; follow it with importctl task-list --image \(id)")
}
