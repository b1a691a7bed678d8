// One request's way through the router, whichever listener took it (the Unix socket or TCP, both Hummingbird's
// HTTP/1.1 channel): the body relayed to the router on a thread of its own, the answer as Hummingbird sends it.
import Foundation
import HTTPTypes
import HummingbirdCore
import ImportCore
import Logging
import NIOCore

struct APIExchange: Sendable {
    let router: APIRouter
    let logger: Logger

    /// A connection that sends nothing for a minute is closed: a stalled head or body then fails, and the
    /// request's thread ends.
    static let http1 = HTTP1Channel.Configuration(idleTimeout: .seconds(60))
    /// How long one chunk of a download may wait for the client to read: a client that stops reading does not hold
    /// its connection (and its caller's slot) for ever.
    static let writeStall: TimeAmount = .seconds(60)

    /// The answer to `request` from `caller`, whose body arrives on `channel`; `peer` names the caller in the logs.
    func answer(_ request: APIRequest, body: RequestBody, caller: Caller, channel: any Channel, peer: String) async -> Response {
        let watchdog = BodyWatchdog()
        let watching = watchdog.watch(channel, peer: peer, logger: logger)
        let relay = BodyRelay()
        async let answer = Self.onOwnThread { [router] in
            defer { relay.close() }
            return router.respond(to: request, body: relay, caller: caller)
        }
        do {
            for try await buffer in body {
                watchdog.received(buffer.readableBytes)
                let offered = ContinuousClock.now
                let taken = await relay.push(Data(buffer.readableBytesView))
                if ContinuousClock.now - offered > .milliseconds(100) { watchdog.serverWaited() }
                guard taken else { break }
            }
            relay.finish()
        } catch {
            relay.finish(failure: error)
        }
        watching.cancel()
        return response(await answer, streamingTo: channel, peer: peer)
    }

    /// Runs blocking work (catalog, staging writes, fsync) on a thread that is not the event loop's nor the
    /// cooperative pool's.
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }

    /// The router's answer for Hummingbird; a file (a download) is streamed with its length, each chunk bounded by
    /// `writeStall`.
    func response(_ answer: APIResponse, streamingTo channel: any Channel, peer: String) -> Response {
        guard let file = answer.file else { return Self.response(answer) }
        var headers = Self.fields(answer)
        headers[.contentType] = answer.contentType
        let body = ResponseBody(contentLength: Int(file.length)) { [handle = file.handle, logger] writer in
            defer { try? handle.close() }  // Read-only: closing cannot lose data.
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                let stalled = channel.eventLoop.scheduleTask(in: Self.writeStall) {
                    logger.warning("API download left unread for a minute; closing the connection", metadata: ["api.peer": "\(peer)"])
                    channel.close(promise: nil)
                }
                defer { stalled.cancel() }
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: body)
    }

    /// An answer without a file body: its status, headers and bytes (Hummingbird adds the Content-Length).
    static func response(_ answer: APIResponse) -> Response {
        Response(
            status: HTTPResponse.Status(code: answer.status), headers: fields(answer),
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    private static func fields(_ answer: APIResponse) -> HTTPFields {
        var fields = HTTPFields()
        if !answer.body.isEmpty { fields[.contentType] = answer.contentType }
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return fields
    }
}
