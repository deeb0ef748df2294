import CLibWebSockets
import Foundation
import Logging

// libwebsockets behind a small Swift API. Every lws_* call of the project is in this file.
// One context, one service thread (the caller of `run()`); from other threads only `post` and
// `stop` (lws_cancel_service is the one thread-safe lws call).

public struct LWSConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Directory served at "/" (index.html by default).
    public var staticRoot: String?
    /// Exact paths served from a file of `staticRoot`, e.g. "/wallboard" -> "wallboard.html".
    public var staticAliases: [String: String] = [:]
    /// Paths whose HTTP requests go to the delegate.
    public var callbackPrefixes = ["/api", "/healthz", "/metrics"]
    public var webSocketPaths = ["/live"]
    public var webSocketProtocolName = "sightline.v1"
    /// Larger request bodies: 413 without calling the delegate.
    public var maxHTTPBodyBytes = 1 << 20
    /// Larger incoming WebSocket messages: close 1009.
    public var maxWebSocketMessageBytes = 64 << 10
    /// Bytes that may wait for one WebSocket connection; `send` refuses beyond.
    public var maxOutgoingBytesPerConnection = 4 << 20
    public var permessageDeflate = false
    /// nil: an Origin must match the Host header (or be absent); else exactly one of these.
    public var allowedOrigins: [String]?
    public var pingIntervalSeconds = 20
    public var hangupAfterSeconds = 45
    public var tickMilliseconds = 250
    public var tlsCertificatePath: String?
    public var tlsPrivateKeyPath: String?

    public init() {}
}

public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    let value: UInt64
    public var description: String { "req-\(value)" }
}

public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    let value: UInt64
    public var description: String { "ws-\(value)" }
}

public struct HTTPRequest: Sendable {
    public let id: RequestID
    public let method: String
    public let path: String
    public let query: String
    /// Lowercased names.
    public let headers: [String: String]
    public let body: [UInt8]
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)] = []
    public var body: [UInt8]

    public init(status: Int, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public static func json(status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: Array(text.utf8))
    }

    public static func text(status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

public struct WebSocketUpgrade: Sendable {
    public let path: String
    public let query: String
    public let headers: [String: String]
}

/// Bytes encoded once and shared by every connection they are sent to. Holds LWS_PRE bytes of
/// headroom so lws can write the frame header in front without a copy.
public final class OutgoingMessage: @unchecked Sendable {
    let storage: UnsafeMutablePointer<UInt8>
    public let count: Int

    public convenience init(_ text: String) {
        self.init(bytes: Array(text.utf8))
    }

    public init(bytes: [UInt8]) {
        count = bytes.count
        storage = .allocate(capacity: Int(SIGHTLINE_LWS_PRE) + max(bytes.count, 1))
        bytes.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { (storage + Int(SIGHTLINE_LWS_PRE)).update(from: base, count: bytes.count) }
        }
    }

    deinit {
        storage.deallocate()
    }
}

/// Called on the loop thread.
public protocol LWSServerDelegate: AnyObject {
    /// Must eventually answer with `server.respond(request.id, ...)`, now or later.
    func server(_ server: LWSServer, didReceive request: HTTPRequest)
    func server(_ server: LWSServer, didOpen connection: ConnectionID, upgrade: WebSocketUpgrade)
    func server(_ server: LWSServer, connection: ConnectionID, didReceive text: String)
    func server(_ server: LWSServer, didClose connection: ConnectionID)
    func serverTick(_ server: LWSServer)
}

public final class LWSServer: @unchecked Sendable {
    public enum Error: Swift.Error, CustomStringConvertible {
        case cannotListen(host: String, port: Int)
        case staticRootMissing(String)

        public var description: String {
            switch self {
            case .cannotListen(let host, let port):
                return "cannot listen on \(host):\(port): is another server using the port? Choose another with --listen"
            case .staticRootMissing(let path):
                return "web folder \(path) not found: pass --web DIR"
            }
        }
    }

    /// One WebSocket connection (lifetime: ESTABLISHED to CLOSED).
    private struct Connection {
        let wsi: OpaquePointer
        var queue: [OutgoingMessage] = []
        var queueHead = 0
        var queuedBytes = 0
        /// Bytes of the first queued message already written (large messages go out in fragments).
        var offset = 0
        var receiving: [UInt8] = []
        var closing: (code: UInt16, reason: String)?
    }

    /// One HTTP transaction (lifetime: LWS_CALLBACK_HTTP to the response's last byte).
    private struct Exchange {
        let wsi: OpaquePointer
        var method = "GET"
        var path = ""
        var query = ""
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var tooLarge = false
        var response: HTTPResponse?
        var headersSent = false
        var sentBytes = 0
    }

    public let configuration: LWSConfiguration
    public weak var delegate: LWSServerDelegate?
    private let logger: Logger

    private var context: OpaquePointer?
    private var nextID: UInt64 = 0
    private var connections: [UInt64: Connection] = [:]
    private var exchanges: [UInt64: Exchange] = [:]
    private let postLock = NSLock()
    private var posted: [@Sendable () -> Void] = []
    private var stopRequested = false
    private var closingDeadline: Date?

    // C memory that lives as long as the context.
    private var cStrings: [UnsafeMutablePointer<CChar>] = []
    private var protocols: UnsafeMutablePointer<lws_protocols>?
    private var mounts: [UnsafeMutablePointer<lws_http_mount>] = []
    private var mimeTypes: [UnsafeMutablePointer<lws_protocol_vhost_options>] = []
    private var extensions: UnsafeMutablePointer<lws_extension>?
    private var retry: UnsafeMutablePointer<lws_retry_bo_t>?
    private var timer: UnsafeMutablePointer<sightline_timer>?
    private static let fragmentBytes = 32 * 1024
    /// Loop-thread scratch space for one fragment with headroom.
    private let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(SIGHTLINE_LWS_PRE) + fragmentBytes)

    public init(configuration: LWSConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    deinit {
        freeCMemory()
        scratch.deallocate()
    }

    public var connectionCount: Int { connections.count }
    public private(set) var boundPort = 0

    // MARK: Running

    /// Serves until `stop()`. Throws when it cannot listen.
    public func run() throws {
        if let root = configuration.staticRoot, !FileManager.default.fileExists(atPath: root + "/index.html") {
            throw Error.staticRootMissing(root)
        }
        lws_set_log_level(Int32(LLL_ERR), nil)
        var info = lws_context_creation_info()
        info.port = Int32(configuration.port)
        info.iface = UnsafePointer(cString(configuration.host))
        info.protocols = UnsafePointer(makeProtocols())
        info.mounts = UnsafePointer(makeMounts())
        info.user = Unmanaged.passUnretained(self).toOpaque()
        info.options = UInt64(LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE)
            | UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8)
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsPrivateKeyPath {
            info.options |= UInt64(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT)
            info.ssl_cert_filepath = UnsafePointer(cString(cert))
            info.ssl_private_key_filepath = UnsafePointer(cString(key))
        }
        let r = UnsafeMutablePointer<lws_retry_bo_t>.allocate(capacity: 1)
        r.initialize(to: lws_retry_bo_t())
        r.pointee.secs_since_valid_ping = UInt16(configuration.pingIntervalSeconds)
        r.pointee.secs_since_valid_hangup = UInt16(configuration.hangupAfterSeconds)
        retry = r
        info.retry_and_idle_policy = UnsafePointer(r)
        if configuration.permessageDeflate {
            let ext = UnsafeMutablePointer<lws_extension>.allocate(capacity: 2)
            ext.initialize(repeating: lws_extension(), count: 2)
            ext[0].name = UnsafePointer(cString("permessage-deflate"))
            ext[0].callback = lws_extension_callback_pm_deflate
            ext[0].client_offer = UnsafePointer(cString("permessage-deflate; client_max_window_bits"))
            extensions = ext
            info.extensions = UnsafePointer(ext)
        }
        guard let ctx = lws_create_context(&info) else {
            freeCMemory()
            throw Error.cannotListen(host: configuration.host, port: configuration.port)
        }
        context = ctx
        boundPort = configuration.port
        let t = UnsafeMutablePointer<sightline_timer>.allocate(capacity: 1)
        t.initialize(to: sightline_timer())
        t.pointee.owner = Unmanaged.passUnretained(self).toOpaque()
        timer = t
        scheduleTick()

        while true {
            if lws_service(ctx, 0) < 0 { break }
            if let deadline = closingDeadline, connections.isEmpty || Date() > deadline { break }
        }
        lws_context_destroy(ctx)
        context = nil
        connections.removeAll()
        exchanges.removeAll()
        freeCMemory()
    }

    /// Thread-safe: closes WebSocket clients with 1001, then `run()` returns.
    public func stop() {
        post { [self] in
            guard closingDeadline == nil else { return }
            closingDeadline = Date(timeIntervalSinceNow: 2)
            for id in connections.keys { closeConnection(id, code: 1001, reason: "server shutting down") }
        }
    }

    /// Thread-safe: runs `work` on the loop thread soon.
    public func post(_ work: @escaping @Sendable () -> Void) {
        postLock.withLock { posted.append(work) }
        if let context { lws_cancel_service(context) }
    }

    /// Stops the server on SIGINT and SIGTERM (the handler only sets a flag and wakes the loop).
    public func stopOnSignals() {
        signalTarget = Unmanaged.passUnretained(self).toOpaque()
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in
                signalReceived = 1
                if let target = signalTarget,
                   let context = Unmanaged<LWSServer>.fromOpaque(target).takeUnretainedValue().context {
                    lws_cancel_service(context)
                }
            }
        }
    }

    fileprivate func drainPosted() {
        if signalReceived != 0, closingDeadline == nil {
            logger.notice("signal received: closing connections and stopping")
            closingDeadline = Date(timeIntervalSinceNow: 2)
            for id in connections.keys { closeConnection(id, code: 1001, reason: "server shutting down") }
        }
        let work = postLock.withLock { () -> [@Sendable () -> Void] in
            let w = posted
            posted = []
            return w
        }
        for w in work { w() }
    }

    fileprivate func tick() {
        delegate?.serverTick(self)
        scheduleTick()
    }

    private func scheduleTick() {
        guard let context, let timer else { return }
        lws_sul_schedule(context, 0, &timer.pointee.sul, { sul in
            guard let sul, let owner = sightline_timer_owner(sul) else { return }
            Unmanaged<LWSServer>.fromOpaque(owner).takeUnretainedValue().tick()
        }, lws_usec_t(configuration.tickMilliseconds) * 1000)
    }

    // MARK: Sending (loop thread)

    /// Queues `message` for `connection`; false (nothing queued) when that would exceed the
    /// connection's bound (unless nothing else waits), or the connection is gone.
    @discardableResult
    public func send(_ connection: ConnectionID, _ message: OutgoingMessage) -> Bool {
        guard var c = connections[connection.value], c.closing == nil else { return false }
        // One message always fits in an empty queue (a large snapshot must be sendable).
        guard c.queuedBytes == 0 || c.queuedBytes + message.count <= configuration.maxOutgoingBytesPerConnection else {
            return false
        }
        c.queue.append(message)
        c.queuedBytes += message.count
        let wsi = c.wsi
        connections[connection.value] = c
        lws_callback_on_writable(wsi)
        return true
    }

    public func queuedBytes(_ connection: ConnectionID) -> Int {
        connections[connection.value]?.queuedBytes ?? 0
    }

    /// Drops what waits for `connection` (lws finishes a frame it already started).
    public func discardQueued(_ connection: ConnectionID) {
        guard var c = connections[connection.value] else { return }
        // A message already partly written must be finished, or the stream breaks.
        let partial = c.offset > 0 && c.queueHead < c.queue.count ? c.queue[c.queueHead] : nil
        c.queue = partial.map { [$0] } ?? []
        c.queueHead = 0
        c.queuedBytes = partial?.count ?? 0
        connections[connection.value] = c
    }

    public func close(_ connection: ConnectionID, code: UInt16, reason: String) {
        closeConnection(connection.value, code: code, reason: reason)
    }

    private func closeConnection(_ id: UInt64, code: UInt16, reason: String) {
        guard var c = connections[id], c.closing == nil else { return }
        c.closing = (code, String(reason.utf8.prefix(120)) ?? "")
        connections[id] = c
        lws_callback_on_writable(c.wsi)
    }

    public func respond(_ id: RequestID, _ response: HTTPResponse) {
        guard var e = exchanges[id.value], e.response == nil else { return }
        e.response = response
        exchanges[id.value] = e
        lws_callback_on_writable(e.wsi)
    }

    // MARK: The callback

    fileprivate func callback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?,
                              _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let slot = user?.assumingMemoryBound(to: UInt64.self)
        switch reason {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            drainPosted()
            return 0

        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            guard let wsi else { return 1 }
            let path = header(wsi, WSI_TOKEN_GET_URI)
            guard configuration.webSocketPaths.contains(path) else { return 1 }
            return originAllowed(wsi) ? 0 : 1

        case LWS_CALLBACK_ESTABLISHED:
            guard let wsi, let slot else { return -1 }
            nextID += 1
            slot.pointee = nextID
            connections[nextID] = Connection(wsi: wsi)
            let upgrade = WebSocketUpgrade(path: header(wsi, WSI_TOKEN_GET_URI), query: query(wsi), headers: headers(wsi))
            delegate?.server(self, didOpen: ConnectionID(value: nextID), upgrade: upgrade)
            return 0

        case LWS_CALLBACK_RECEIVE:
            guard let wsi, let slot, var c = connections[slot.pointee] else { return -1 }
            if lws_frame_is_binary(wsi) != 0 {
                lws_close_reason(wsi, lws_close_status(rawValue: 4400), reasonBytes("bad message: binary frames are not accepted"), 43)
                return -1
            }
            if c.receiving.count + length > configuration.maxWebSocketMessageBytes {
                let text = Array("message too big (limit \(configuration.maxWebSocketMessageBytes) bytes)".utf8)
                var copy = text
                lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, &copy, text.count)
                connections[slot.pointee] = nil
                delegate?.server(self, didClose: ConnectionID(value: slot.pointee))
                slot.pointee = 0
                return -1
            }
            if let input, length > 0 {
                c.receiving.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            }
            let complete = lws_is_final_fragment(wsi) != 0 && lws_remaining_packet_payload(wsi) == 0
            let message = complete ? c.receiving : nil
            if complete { c.receiving = [] }
            connections[slot.pointee] = c
            if let message {
                delegate?.server(self, connection: ConnectionID(value: slot.pointee), didReceive: String(decoding: message, as: UTF8.self))
            }
            return 0

        case LWS_CALLBACK_SERVER_WRITEABLE:
            guard let wsi, let slot, var c = connections[slot.pointee] else { return -1 }
            if let closing = c.closing, c.offset == 0, c.queueHead >= c.queue.count || closing.code == 1001 || closing.code >= 4000 {
                var bytes = Array(closing.reason.utf8)
                lws_close_reason(wsi, lws_close_status(rawValue: UInt32(closing.code)), &bytes, bytes.count)
                return -1
            }
            guard c.queueHead < c.queue.count else { return 0 }
            let message = c.queue[c.queueHead]
            // Large messages go out a fragment per writeable callback, so lws never has to copy
            // a remainder it could not send; fragments are copied to a scratch buffer because
            // lws writes the frame header into the headroom, and the message is shared.
            let start = c.offset
            let n = min(Self.fragmentBytes, message.count - start)
            let last = start + n == message.count
            let flags = lws_write_ws_flags(Int32(LWS_WRITE_TEXT.rawValue), start == 0 ? 1 : 0, last ? 1 : 0)
            let written: Int32
            if start == 0 && last {
                written = lws_write(wsi, message.storage + Int(SIGHTLINE_LWS_PRE), n, lws_write_protocol(UInt32(flags)))
            } else {
                (scratch + Int(SIGHTLINE_LWS_PRE)).update(from: message.storage + Int(SIGHTLINE_LWS_PRE) + start, count: n)
                written = lws_write(wsi, scratch + Int(SIGHTLINE_LWS_PRE), n, lws_write_protocol(UInt32(flags)))
            }
            if written < n { return -1 }
            if last {
                c.offset = 0
                c.queueHead += 1
                c.queuedBytes -= message.count
                if c.queueHead == c.queue.count {
                    c.queue.removeAll(keepingCapacity: true)
                    c.queueHead = 0
                } else if c.queueHead > 64 {
                    c.queue.removeFirst(c.queueHead)
                    c.queueHead = 0
                }
            } else {
                c.offset = start + n
            }
            let more = !c.queue.isEmpty || c.closing != nil
            connections[slot.pointee] = c
            if more { lws_callback_on_writable(wsi) }
            return 0

        case LWS_CALLBACK_CLOSED:
            if let slot, slot.pointee != 0, connections.removeValue(forKey: slot.pointee) != nil {
                delegate?.server(self, didClose: ConnectionID(value: slot.pointee))
                slot.pointee = 0
            }
            return 0

        case LWS_CALLBACK_HTTP:
            guard let wsi, let slot else { return -1 }
            return startExchange(wsi, slot)

        case LWS_CALLBACK_HTTP_BODY:
            guard let slot, var e = exchanges[slot.pointee] else { return 0 }
            if e.body.count + length > configuration.maxHTTPBodyBytes {
                e.tooLarge = true
                e.body = []
            } else if let input, length > 0, !e.tooLarge {
                e.body.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            }
            exchanges[slot.pointee] = e
            return 0

        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            guard let slot, let e = exchanges[slot.pointee] else { return 0 }
            if e.tooLarge {
                respond(RequestID(value: slot.pointee), tooLarge)
            } else {
                dispatch(slot.pointee)
            }
            return 0

        case LWS_CALLBACK_HTTP_WRITEABLE:
            guard let wsi, let slot, exchanges[slot.pointee] != nil else { return 0 }
            return writeResponse(wsi, slot)

        case LWS_CALLBACK_CLOSED_HTTP:
            if let slot, slot.pointee != 0 { exchanges[slot.pointee] = nil }
            return 0

        default:
            return lws_callback_http_dummy(wsi, reason, user, input, length)
        }
    }

    private var tooLarge: HTTPResponse {
        .json(status: 413, "{\"error\":{\"code\":\"body_too_large\",\"message\":\"the body is larger than \(configuration.maxHTTPBodyBytes) bytes\"}}")
    }

    private func startExchange(_ wsi: OpaquePointer, _ slot: UnsafeMutablePointer<UInt64>) -> Int32 {
        let methods: [(lws_token_indexes, String)] = [
            (WSI_TOKEN_GET_URI, "GET"), (WSI_TOKEN_POST_URI, "POST"), (WSI_TOKEN_PUT_URI, "PUT"),
            (WSI_TOKEN_DELETE_URI, "DELETE"), (WSI_TOKEN_PATCH_URI, "PATCH"), (WSI_TOKEN_OPTIONS_URI, "OPTIONS"),
            (WSI_TOKEN_HEAD_URI, "HEAD"),
        ]
        var method = "GET", path = ""
        for (token, name) in methods where lws_hdr_total_length(wsi, token) > 0 {
            method = name
            path = header(wsi, token)
            break
        }
        nextID += 1
        slot.pointee = nextID
        var e = Exchange(wsi: wsi)
        e.method = method
        e.path = path
        e.query = query(wsi)
        e.headers = headers(wsi)
        exchanges[nextID] = e
        let id = RequestID(value: nextID)
        // Aliases are answered here (a mount would redirect to "/alias/" and drop the query).
        if let file = configuration.staticAliases[path], let root = configuration.staticRoot, method == "GET" || method == "HEAD" {
            if let data = FileManager.default.contents(atPath: root + "/" + file) {
                respond(id, HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(data)))
            } else {
                respond(id, .json(status: 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such file\"}}"))
            }
            return 0
        }
        guard configuration.callbackPrefixes.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) else {
            // A static file that is not there falls through to here.
            respond(id, .json(status: 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such file\"}}"))
            return 0
        }
        if let length = e.headers["content-length"].flatMap(Int.init), length > configuration.maxHTTPBodyBytes {
            respond(id, tooLarge)
            return 0
        }
        let hasBody = (e.headers["content-length"].flatMap(Int.init) ?? 0) > 0 || e.headers["transfer-encoding"] != nil
        if !hasBody { dispatch(nextID) }
        return 0
    }

    private func dispatch(_ id: UInt64) {
        guard let e = exchanges[id] else { return }
        let request = HTTPRequest(id: RequestID(value: id), method: e.method, path: e.path, query: e.query,
                                  headers: e.headers, body: e.body)
        if let delegate {
            delegate.server(self, didReceive: request)
        } else {
            respond(request.id, .text(status: 503, "not ready"))
        }
    }

    private func writeResponse(_ wsi: OpaquePointer, _ slot: UnsafeMutablePointer<UInt64>) -> Int32 {
        guard var e = exchanges[slot.pointee], let response = e.response else { return 0 }
        let chunk = 16 * 1024
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(SIGHTLINE_LWS_PRE) + chunk + 2048)
        defer { buffer.deallocate() }
        let start = buffer + Int(SIGHTLINE_LWS_PRE)
        if !e.headersSent {
            var p: UnsafeMutablePointer<UInt8>? = start
            let end = start + chunk + 2047
            if lws_add_http_common_headers(wsi, UInt32(response.status), response.contentType,
                                           lws_filepos_t(response.body.count), &p, end) != 0 { return -1 }
            var extra = response.headers
            extra.append(("cache-control", "no-store"))
            for (name, value) in extra {
                let n = name.lowercased() + ":"
                if lws_add_http_header_by_name(wsi, n, value, Int32(value.utf8.count), &p, end) != 0 { return -1 }
            }
            if lws_finalize_write_http_header(wsi, start, &p, end) != 0 { return -1 }
            e.headersSent = true
            exchanges[slot.pointee] = e
            if !response.body.isEmpty {
                lws_callback_on_writable(wsi)
                return 0
            }
        } else {
            let remaining = response.body.count - e.sentBytes
            let n = min(chunk, remaining)
            response.body.withUnsafeBufferPointer { src in
                start.update(from: src.baseAddress! + e.sentBytes, count: n)
            }
            let final = n == remaining
            if lws_write(wsi, start, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != n { return -1 }
            e.sentBytes += n
            exchanges[slot.pointee] = e
            if !final {
                lws_callback_on_writable(wsi)
                return 0
            }
        }
        exchanges[slot.pointee] = nil
        slot.pointee = 0
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }

    // MARK: Headers

    private func header(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String {
        let length = Int(lws_hdr_total_length(wsi, token))
        guard length > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_copy(wsi, &buffer, Int32(length + 1), token) >= 0 else { return "" }
        return String(cString: buffer)
    }

    private func query(_ wsi: OpaquePointer) -> String {
        var parts: [String] = []
        var buffer = [CChar](repeating: 0, count: 4096)
        var index: Int32 = 0
        while lws_hdr_copy_fragment(wsi, &buffer, Int32(buffer.count), WSI_TOKEN_HTTP_URI_ARGS, index) > 0 {
            parts.append(String(cString: buffer))
            index += 1
        }
        return parts.joined(separator: "&")
    }

    private func headers(_ wsi: OpaquePointer) -> [String: String] {
        let wanted: [(String, lws_token_indexes)] = [
            ("host", WSI_TOKEN_HOST), ("origin", WSI_TOKEN_ORIGIN), ("authorization", WSI_TOKEN_HTTP_AUTHORIZATION),
            ("content-type", WSI_TOKEN_HTTP_CONTENT_TYPE), ("content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH),
            ("accept", WSI_TOKEN_HTTP_ACCEPT), ("user-agent", WSI_TOKEN_HTTP_USER_AGENT),
            ("transfer-encoding", WSI_TOKEN_HTTP_TRANSFER_ENCODING),
        ]
        var out: [String: String] = [:]
        for (name, token) in wanted {
            let value = header(wsi, token)
            if !value.isEmpty { out[name] = value }
        }
        return out
    }

    private func originAllowed(_ wsi: OpaquePointer) -> Bool {
        let origin = header(wsi, WSI_TOKEN_ORIGIN)
        if let allowed = configuration.allowedOrigins { return allowed.contains(origin) }
        if origin.isEmpty { return true }
        let host = header(wsi, WSI_TOKEN_HOST)
        return origin == "http://" + host || origin == "https://" + host
    }

    // MARK: C memory

    private func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        cStrings.append(p)
        return p
    }

    private func reasonBytes(_ s: String) -> UnsafeMutablePointer<UInt8> {
        UnsafeMutableRawPointer(cString(s)).assumingMemoryBound(to: UInt8.self)
    }

    private func makeProtocols() -> UnsafeMutablePointer<lws_protocols> {
        let list = UnsafeMutablePointer<lws_protocols>.allocate(capacity: 2)
        list.initialize(repeating: lws_protocols(), count: 2)
        list[0].name = UnsafePointer(cString(configuration.webSocketProtocolName))
        list[0].callback = lwsCallback
        list[0].per_session_data_size = MemoryLayout<UInt64>.size
        list[0].rx_buffer_size = 0
        protocols = list
        return list
    }

    private func makeMounts() -> UnsafeMutablePointer<lws_http_mount>? {
        var specs: [(mountpoint: String, origin: String, def: String?, kind: lws_mount_protocols)] = []
        for prefix in configuration.callbackPrefixes + configuration.staticAliases.keys.sorted() {
            specs.append((prefix, "callback://" + configuration.webSocketProtocolName, nil, LWSMPRO_CALLBACK))
        }
        if let root = configuration.staticRoot {
            specs.append(("/", root, "index.html", LWSMPRO_FILE))
        }
        let mime = makeMimeTypes()
        var next: UnsafeMutablePointer<lws_http_mount>?
        for spec in specs.reversed() {
            let m = UnsafeMutablePointer<lws_http_mount>.allocate(capacity: 1)
            m.initialize(to: lws_http_mount())
            m.pointee.mount_next = UnsafePointer(next)
            m.pointee.mountpoint = UnsafePointer(cString(spec.mountpoint))
            m.pointee.mountpoint_len = UInt8(spec.mountpoint.utf8.count)
            m.pointee.origin = UnsafePointer(cString(spec.origin))
            if spec.kind == LWSMPRO_CALLBACK { m.pointee.protocol = UnsafePointer(cString(configuration.webSocketProtocolName)) }
            if let def = spec.def { m.pointee.def = UnsafePointer(cString(def)) }
            m.pointee.origin_protocol = UInt8(spec.kind.rawValue)
            m.pointee.extra_mimetypes = UnsafePointer(mime)
            mounts.append(m)
            next = m
        }
        return next
    }

    private func makeMimeTypes() -> UnsafeMutablePointer<lws_protocol_vhost_options>? {
        let types = [(".mjs", "text/javascript"), (".js", "text/javascript"), (".svg", "image/svg+xml"),
                     (".woff2", "font/woff2"), (".json", "application/json"), (".webmanifest", "application/manifest+json")]
        var next: UnsafeMutablePointer<lws_protocol_vhost_options>?
        for (ext, type) in types {
            let o = UnsafeMutablePointer<lws_protocol_vhost_options>.allocate(capacity: 1)
            o.initialize(to: lws_protocol_vhost_options())
            o.pointee.next = UnsafePointer(next)
            o.pointee.name = UnsafePointer(cString(ext))
            o.pointee.value = UnsafePointer(cString(type))
            mimeTypes.append(o)
            next = o
        }
        return next
    }

    private func freeCMemory() {
        cStrings.forEach { free($0) }
        cStrings = []
        mounts.forEach { $0.deallocate() }
        mounts = []
        mimeTypes.forEach { $0.deallocate() }
        mimeTypes = []
        protocols?.deallocate()
        protocols = nil
        extensions?.deallocate()
        extensions = nil
        retry?.deallocate()
        retry = nil
        timer?.deallocate()
        timer = nil
    }
}

// Written by the signal handler, read on the loop thread.
nonisolated(unsafe) private var signalReceived: sig_atomic_t = 0
nonisolated(unsafe) private var signalTarget: UnsafeMutableRawPointer?

/// The one lws callback: recovers the server from the context's user pointer.
private func lwsCallback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?,
                         _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
    guard let wsi, let context = lws_get_context(wsi), let owner = lws_context_user(context) else {
        return lws_callback_http_dummy(wsi, reason, user, input, length)
    }
    return Unmanaged<LWSServer>.fromOpaque(owner).takeUnretainedValue().callback(wsi, reason, user, input, length)
}
