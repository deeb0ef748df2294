import CLibWebSockets
import Foundation
import Logging
import Synchronization

// libwebsockets behind a small Swift API. One context, one service thread (the caller of `run()`).
// From other threads only `post` and `stop` (lws_cancel_service is the one thread-safe lws call).
//
// This file owns the context and the C memory it points at (protocols, mounts, strings): all of
// it is allocated before `lws_create_context` and freed after `lws_context_destroy`. The HTTP
// exchange is in HTTPExchange.swift, the outgoing queue of a connection in OutgoingQueue.swift.

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
    /// Larger request bodies: 413 without reading them.
    public var maxHTTPBodyBytes = 1 << 20
    /// Bodies of every request together may hold at most this much memory; beyond: 503.
    public var maxBufferedBodyBytes = 64 << 20
    /// A request body must arrive within this many seconds of its headers, or the connection closes.
    public var bodyTimeoutSeconds = 10
    /// A request handed to the delegate and not answered within this many seconds gets 504.
    public var answerTimeoutSeconds = 120
    /// An answer of which no byte could be sent for this many seconds (a client that stopped
    /// reading): the connection is closed.
    public var stalledResponseSeconds = 30
    /// Larger incoming WebSocket messages: close 1009.
    public var maxWebSocketMessageBytes = 64 << 10
    /// Bytes that may wait for one WebSocket connection; `send` refuses beyond.
    public var maxOutgoingBytesPerConnection = 4 << 20
    public var permessageDeflate = false
    /// nil: an Origin must match the Host header (or be absent); else exactly one of these.
    /// Checked on the WebSocket upgrade and on every request to a callback path that is not
    /// GET or HEAD (a refused Origin gets 403).
    public var allowedOrigins: [String]?
    /// WebSockets one client address may hold open; beyond, the upgrade gets 429. Loopback
    /// addresses (load tests, a proxy on this machine) are not limited. nil: no limit.
    public var maxConnectionsPerAddress: Int? = 256
    /// Host names (without port) requests to callback paths and the upgrade may name in their
    /// Host header; others get 403 (a foreign name pointed at this address: DNS rebinding).
    /// nil: any.
    public var allowedHosts: [String]?
    public var pingIntervalSeconds = 20
    public var hangupAfterSeconds = 45
    /// Housekeeping tick (`.tick` events; also where a signal is noticed).
    public var tickMilliseconds = 250
    /// File descriptors kept free for everything but client sockets (database, files, logs).
    public var reservedDescriptors = 64
    public var tlsCertificatePath: String?
    public var tlsPrivateKeyPath: String?

    public init() {}
}

/// Called on the loop thread.
public protocol LWSServerDelegate: AnyObject {
    /// The headers of an HTTP request for a callback path have arrived; its body is not read yet.
    /// Return a response to answer at once without reading the body (refusals), or nil to read
    /// the body and get `.request` later.
    func server(_ server: LWSServer, shouldAccept head: HTTPRequestHead) -> HTTPResponse?
    func server(_ server: LWSServer, handle event: LWSServer.Event)
}

public final class LWSServer {
    /// What happens on the loop, in the order it happens.
    public enum Event: Sendable {
        /// A complete request. Answer with `respond(request.id, ...)`, now or later.
        case request(HTTPRequest)
        case opened(ConnectionID, WebSocketUpgrade)
        case message(ConnectionID, String)
        /// The connection is gone (after `close` too); its queue is dropped.
        case closed(ConnectionID)
        /// Every `tickMilliseconds`.
        case tick
        /// The one-shot timer of `wake(afterMilliseconds:)` fired.
        case timer
    }

    public enum Error: Swift.Error, CustomStringConvertible {
        case cannotListen(host: String, port: Int)
        case staticRootMissing(String)
        case tlsFile(path: String, reason: String)
        case badConfiguration(String)

        public var description: String {
            switch self {
            case .cannotListen(let host, let port):
                return "cannot listen on \(host):\(port): the address is in use or not available here; choose another with --listen"
            case .staticRootMissing(let path):
                return "web folder \(path) not found: pass --web DIR"
            case .tlsFile(let path, let reason):
                return "cannot use TLS file \(path): \(reason); check --tls-cert and --tls-key"
            case .badConfiguration(let what):
                return "bad server configuration: \(what)"
            }
        }
    }

    /// One WebSocket connection (lifetime: ESTABLISHED to CLOSED). Always mutated in place in
    /// `connections` (or taken out of it while being written): a copy would make every change to
    /// the queue copy it.
    struct Connection {
        let wsi: OpaquePointer
        /// The client's address (for the per-address limit).
        var peer = ""
        var queue: OutgoingQueue
        var receiving: [UInt8] = []
        var closing: (code: UInt16, reason: String)?

        /// Queues `message` unless closing or over the bound; `wake` is the wsi to ask a writeable
        /// callback for (when the queue was empty).
        mutating func enqueue(_ message: OutgoingMessage) -> (accepted: Bool, wake: OpaquePointer?) {
            guard closing == nil, queue.push(message) else { return (false, nil) }
            return (true, queue.count == 1 ? wsi : nil)
        }
    }

    public let configuration: LWSConfiguration
    public weak var delegate: LWSServerDelegate?
    let logger: Logger

    private var context: OpaquePointer?
    private var loopThread: pthread_t?
    var nextID: UInt64 = 0
    private var connections: [UInt64: Connection] = [:]
    /// Open WebSockets per client address.
    private var connectionsByPeer: [String: Int] = [:]
    var exchanges: [UInt64: HTTPExchange] = [:]
    var bufferedBodyBytes = 0
    private var closingDeadline: Date?

    /// The one part other threads may use: `post` and `stop`.
    public let mailbox = LWSMailbox()

    // C memory that lives as long as the context.
    private var cStrings: [UnsafeMutablePointer<CChar>] = []
    private var protocols: UnsafeMutablePointer<lws_protocols>?
    private var mounts: [UnsafeMutablePointer<lws_http_mount>] = []
    private var vhostOptions: [UnsafeMutablePointer<lws_protocol_vhost_options>] = []
    private var extensions: UnsafeMutablePointer<lws_extension>?
    private var retry: UnsafeMutablePointer<lws_retry_bo_t>?
    private var tickTimer: UnsafeMutablePointer<sightline_timer>?
    private var wakeTimer: UnsafeMutablePointer<sightline_timer>?
    private static let fragmentBytes = 32 * 1024
    /// Small messages written together in one callback, frame headers included.
    private static let batchBytes = 64 * 1024
    /// Loop-thread scratch space for one write with headroom.
    private let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(SIGHTLINE_LWS_PRE) + max(fragmentBytes, batchBytes))

    public init(configuration: LWSConfiguration, logger: Logger) throws {
        guard configuration.maxOutgoingBytesPerConnection >= 64 << 10 else {
            throw Error.badConfiguration("maxOutgoingBytesPerConnection must be at least 65536")
        }
        guard configuration.maxHTTPBodyBytes >= 1024, configuration.maxBufferedBodyBytes >= configuration.maxHTTPBodyBytes else {
            throw Error.badConfiguration("body limits must be at least 1024 bytes, the total at least one body")
        }
        guard configuration.bodyTimeoutSeconds >= 1, configuration.answerTimeoutSeconds >= 1,
              configuration.stalledResponseSeconds >= 1, configuration.tickMilliseconds >= 10,
              configuration.maxWebSocketMessageBytes >= 1024 else {
            throw Error.badConfiguration("body, answer and stalled-response timeouts >= 1 s, tick >= 10 ms, message limit >= 1 KiB")
        }
        self.configuration = configuration
        self.logger = logger
    }

    deinit {
        freeCMemory()
        scratch.deallocate()
    }

    public var connectionCount: Int { connections.count }

    /// Connections that still have something waiting to be written.
    public var backloggedConnectionCount: Int { connections.values.reduce(0) { $0 + ($1.queue.isEmpty ? 0 : 1) } }

    /// Bytes waiting in every connection's queue (not yet handed to the kernel).
    public var totalQueuedBytes: Int { connections.values.reduce(0) { $0 + $1.queue.queuedBytes } }
    public private(set) var boundPort = 0

    /// Whether `run()` is serving (before it starts, everything happens on one thread anyway).
    public var isRunning: Bool { loopThread != nil }

    /// True on the thread running `run()`.
    public var isOnLoop: Bool {
        guard let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    // MARK: Running

    /// Serves until `stop()` or SIGINT/SIGTERM (after `stopOnSignals()`). Calls `listening` once
    /// the port is bound, and `beforeDestroy` after the loop ended but while the context exists
    /// (stop threads that post to it there). Throws when it cannot start.
    public func run(listening: () -> Void = {}, beforeDestroy: () -> Void = {}) throws {
        if let root = configuration.staticRoot, !FileManager.default.fileExists(atPath: root + "/index.html") {
            throw Error.staticRootMissing(root)
        }
        for path in [configuration.tlsCertificatePath, configuration.tlsPrivateKeyPath].compactMap({ $0 }) {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw Error.tlsFile(path: path, reason: FileManager.default.fileExists(atPath: path) ? "not readable" : "no such file")
            }
        }
        loopThread = pthread_self()
        lws_set_log_level(Int32(LLL_ERR | LLL_WARN), nil)  // lws's own warnings reach the log too
        var info = lws_context_creation_info()
        info.port = Int32(configuration.port)
        info.iface = UnsafePointer(cString(configuration.host))
        info.protocols = UnsafePointer(makeProtocols())
        info.mounts = UnsafePointer(makeMounts())
        info.user = Unmanaged.passUnretained(self).toOpaque()
        info.options = UInt64(LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE)
            | UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8)
        // lws sizes its descriptor table from the soft limit when the context is created. It is
        // created with the limit `reservedDescriptors` below what the process may open, and the
        // limit raised after: the database connections and files then always have room, and a
        // client socket beyond the table is closed by lws, where accept() failing with EMFILE on
        // a listen socket that stays readable made the loop spin. (Setting fd_limit_per_thread
        // instead makes lws look every descriptor up by a linear search: 64% of the server's
        // time with 10,000 clients.)
        let descriptors = Self.descriptorLimits(reserved: configuration.reservedDescriptors)
        // Room for a request head of up to 4 KiB (lws's default of 1 KiB drops longer query
        // strings without an answer); it is held only while a head is parsed.
        info.max_http_header_data = 4096
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsPrivateKeyPath {
            info.options |= UInt64(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT)
            info.ssl_cert_filepath = UnsafePointer(cString(cert))
            info.ssl_private_key_filepath = UnsafePointer(cString(key))
            // Forward secrecy only: ECDHE key exchange with AEAD ciphers for TLS 1.2 (which also
            // leaves TLS 1.0 and 1.1 nothing to agree on); every TLS 1.3 suite is forward-secret.
            info.ssl_cipher_list = UnsafePointer(cString(Self.forwardSecretCiphers))
            info.tls1_3_plus_cipher_list = UnsafePointer(cString("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"))
            // HSTS on every response, static files included (lws adds the vhost's headers).
            let hsts = UnsafeMutablePointer<lws_protocol_vhost_options>.allocate(capacity: 1)
            hsts.initialize(to: lws_protocol_vhost_options())
            hsts.pointee.name = UnsafePointer(cString("strict-transport-security:"))
            hsts.pointee.value = UnsafePointer(cString(Self.strictTransportSecurity))
            vhostOptions.append(hsts)
            info.headers = UnsafePointer(hsts)
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
        mailbox.attach(ctx)
        Self.setDescriptorLimit(descriptors.afterwards)
        boundPort = configuration.port
        tickTimer = makeTimer()
        wakeTimer = makeTimer()
        scheduleTick()
        listening()

        while lws_service(ctx, 0) >= 0 {
            if let deadline = closingDeadline, connections.isEmpty || Date() > deadline { break }
        }
        beforeDestroy()
        mailbox.detach()
        lws_context_destroy(ctx)
        context = nil
        connections.removeAll()
        connectionsByPeer.removeAll()
        exchanges.removeAll()
        freeCMemory()
        loopThread = nil
    }

    /// Sets the soft descriptor limit for the context's table (`reserved` below what the process
    /// will have) and returns the limit to set once the context exists.
    static func descriptorLimits(reserved: Int) -> (table: Int, afterwards: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (1024, 1024) }
        // Up to the hard limit, at most 256 Ki descriptors (lws keeps a table entry for each).
        let most = Int(min(limit.rlim_max, 1 << 18))
        let table = max(32, most - reserved)
        setDescriptorLimit(table)
        return (table, most)
    }

    static func setDescriptorLimit(_ n: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = rlim_t(min(UInt64(n), UInt64(limit.rlim_max)))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// TLS 1.2 suites offered: ECDHE key exchange (forward secrecy) and AEAD only.
    static let forwardSecretCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Sent on every response over https (a year; browsers then refuse plain http to this host).
    static let strictTransportSecurity = "max-age=31536000"

    /// Closes WebSocket clients with 1001, then `run()` returns. (Other threads: `mailbox.requestStop()`.)
    public func stop() {
        mailbox.requestStop()
    }

    private func beginClosing() {
        guard closingDeadline == nil else { return }
        closingDeadline = Date(timeIntervalSinceNow: 2)
        for id in connections.keys { closeConnection(id, code: 1001, reason: "server shutting down") }
        if connections.isEmpty, let context { lws_cancel_service(context) }
    }

    /// Runs `work` on the loop thread soon. (Other threads: `mailbox.post`.)
    public func post(_ work: @escaping @Sendable () -> Void) {
        mailbox.post(work)
    }

    /// Stops the server on SIGINT and SIGTERM. The handler only sets a flag; the loop notices it
    /// on its next tick.
    public func stopOnSignals() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in signalReceived = 1 }
        }
    }

    private func drainPosted() {
        let (work, stop) = mailbox.take()
        if stop { beginClosing() }
        for w in work { w() }
    }

    fileprivate func tick() {
        if signalReceived != 0, closingDeadline == nil {
            logger.notice("signal received: closing connections and stopping")
            beginClosing()
        }
        if !exchanges.isEmpty { expireSlowBodies(now: Date()) }
        delegate?.server(self, handle: .tick)
        scheduleTick()
    }

    fileprivate func timerFired() {
        delegate?.server(self, handle: .timer)
    }

    /// Arms the one-shot timer (re-arming replaces the earlier time): `.timer` after `ms`.
    public func wake(afterMilliseconds ms: Int) {
        guard let context, let wakeTimer else { return }
        lws_sul_schedule(context, 0, &wakeTimer.pointee.sul, { sul in
            guard let sul, let owner = sightline_timer_owner(sul) else { return }
            Unmanaged<LWSServer>.fromOpaque(owner).takeUnretainedValue().timerFired()
        }, lws_usec_t(max(ms, 0)) * 1000)
    }

    private func scheduleTick() {
        guard let context, let tickTimer else { return }
        lws_sul_schedule(context, 0, &tickTimer.pointee.sul, { sul in
            guard let sul, let owner = sightline_timer_owner(sul) else { return }
            Unmanaged<LWSServer>.fromOpaque(owner).takeUnretainedValue().tick()
        }, lws_usec_t(configuration.tickMilliseconds) * 1000)
    }

    private func makeTimer() -> UnsafeMutablePointer<sightline_timer> {
        let t = UnsafeMutablePointer<sightline_timer>.allocate(capacity: 1)
        t.initialize(to: sightline_timer())
        t.pointee.owner = Unmanaged.passUnretained(self).toOpaque()
        return t
    }

    // MARK: Sending (loop thread)

    /// Queues `message` for `connection`; false (nothing queued) when that would exceed the
    /// connection's bound, or the connection is gone or closing.
    @discardableResult
    public func send(_ connection: ConnectionID, _ message: OutgoingMessage) -> Bool {
        // Mutated in place through the dictionary: a copy of the connection would make the push
        // copy its whole queue (copy-on-write).
        guard let (accepted, wake) = connections[connection.value]?.enqueue(message) else { return false }
        if let wake { lws_callback_on_writable(wake) }
        return accepted
    }

    public func queuedBytes(_ connection: ConnectionID) -> Int {
        connections[connection.value]?.queue.queuedBytes ?? 0
    }

    /// Drops what waits for `connection` (a message already started is finished).
    public func discardQueued(_ connection: ConnectionID) {
        connections[connection.value]?.queue.discardUnstarted()
    }

    public func close(_ connection: ConnectionID, code: UInt16, reason: String) {
        closeConnection(connection.value, code: code, reason: reason)
    }

    private func closeConnection(_ id: UInt64, code: UInt16, reason: String) {
        guard var c = connections[id], c.closing == nil else { return }
        // A close reason is at most 123 bytes; cut at a character boundary.
        var cut = ""
        for ch in reason where cut.utf8.count + String(ch).utf8.count <= 120 { cut.append(ch) }
        c.closing = (code, cut)
        connections[id] = c
        lws_callback_on_writable(c.wsi)
    }

    // MARK: The callback

    fileprivate func callback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?,
                              _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let slot = user?.assumingMemoryBound(to: UInt64.self)
        switch reason {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            drainPosted()
            return 0

        case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
            // lws serves files by following symlinks: one inside the web folder that leads out of
            // it must not expose what it points at.
            guard let wsi, let input else { return 0 }
            let uri = String(cString: input.assumingMemoryBound(to: CChar.self))
            guard staticFileLeavesRoot(uri) else { return 0 }
            _ = lws_return_http_status(wsi, 403, "not served: a link out of the web folder")
            return 1

        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            guard let wsi else { return 1 }
            let path = header(wsi, WSI_TOKEN_GET_URI)
            guard configuration.webSocketPaths.contains(path) else { return 1 }
            guard peerMayConnect(peer(wsi)) else {
                _ = lws_return_http_status(wsi, 429, "too many connections from this address")
                return 1
            }
            guard hostAllowed(header(wsi, WSI_TOKEN_HOST)) else {
                _ = lws_return_http_status(wsi, 403, "host not allowed")
                return 1
            }
            guard originAllowed(header(wsi, WSI_TOKEN_ORIGIN), host: header(wsi, WSI_TOKEN_HOST)) else {
                // A clear refusal rather than a dropped connection.
                _ = lws_return_http_status(wsi, 403, "origin not allowed")
                return 1
            }
            return 0

        case LWS_CALLBACK_ESTABLISHED:
            guard let wsi, let slot else { return -1 }
            guard let queue = try? OutgoingQueue(byteLimit: configuration.maxOutgoingBytesPerConnection) else { return -1 }
            nextID += 1
            slot.pointee = nextID
            let address = peer(wsi)
            connections[nextID] = Connection(wsi: wsi, peer: address, queue: queue)
            connectionsByPeer[address, default: 0] += 1
            let upgrade = WebSocketUpgrade(path: header(wsi, WSI_TOKEN_GET_URI), query: query(wsi), headers: headers(wsi), peer: address)
            delegate?.server(self, handle: .opened(ConnectionID(nextID), upgrade))
            return 0

        case LWS_CALLBACK_RECEIVE:
            guard let wsi, let slot else { return -1 }
            guard let received = connections[slot.pointee]?.receiving.count else {
                logger.warning("message for unknown connection ws-\(slot.pointee); closing it")
                return -1
            }
            if lws_frame_is_binary(wsi) != 0 {
                return refuse(wsi, slot, code: lws_close_status(rawValue: 4400), "bad message: binary frames are not accepted")
            }
            // The frame's announced size counts at once, not only what has arrived of it.
            let announced = Int(clamping: UInt64(lws_remaining_packet_payload(wsi)))
            if received + length > configuration.maxWebSocketMessageBytes - min(announced, configuration.maxWebSocketMessageBytes) {
                return refuse(wsi, slot, code: LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                              "message too big (limit \(configuration.maxWebSocketMessageBytes) bytes)")
            }
            if let input, length > 0 {
                connections[slot.pointee]?.receiving.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            }
            let complete = lws_is_final_fragment(wsi) != 0 && lws_remaining_packet_payload(wsi) == 0
            var message: [UInt8]?
            if complete {
                message = connections[slot.pointee]?.receiving
                connections[slot.pointee]?.receiving = []
            }
            if let message {
                delegate?.server(self, handle: .message(ConnectionID(slot.pointee), String(decoding: message, as: UTF8.self)))
            }
            return 0

        case LWS_CALLBACK_SERVER_WRITEABLE:
            guard let wsi, let slot else { return -1 }
            guard connections[slot.pointee] != nil else {
                logger.warning("writeable callback for unknown connection ws-\(slot.pointee); closing it")
                return -1
            }
            return writeQueued(wsi, slot.pointee)

        case LWS_CALLBACK_CLOSED:
            if let slot, slot.pointee != 0, let gone = connections.removeValue(forKey: slot.pointee) {
                forgetPeer(gone.peer)
                delegate?.server(self, handle: .closed(ConnectionID(slot.pointee)))
                slot.pointee = 0
            }
            return 0

        case LWS_CALLBACK_HTTP:
            guard let wsi, let slot else { return -1 }
            return startExchange(wsi, slot)

        case LWS_CALLBACK_HTTP_BODY:
            guard let slot else { return 0 }
            return receiveBody(slot.pointee, input, length)

        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            guard let slot else { return 0 }
            return bodyComplete(slot.pointee)

        case LWS_CALLBACK_HTTP_WRITEABLE:
            guard let wsi, let slot, exchanges[slot.pointee] != nil else { return 0 }
            return writeResponse(wsi, slot)

        case LWS_CALLBACK_CLOSED_HTTP:
            if let slot, slot.pointee != 0 { endExchange(slot.pointee) }
            return 0

        default:
            return lws_callback_http_dummy(wsi, reason, user, input, length)
        }
    }

    /// Closes a WebSocket at once with `code` and `reason`, telling the delegate.
    private func refuse(_ wsi: OpaquePointer, _ slot: UnsafeMutablePointer<UInt64>, code: lws_close_status, _ reason: String) -> Int32 {
        var bytes = Array(reason.utf8.prefix(120))
        lws_close_reason(wsi, code, &bytes, bytes.count)
        if let gone = connections.removeValue(forKey: slot.pointee) {
            forgetPeer(gone.peer)
            delegate?.server(self, handle: .closed(ConnectionID(slot.pointee)))
        }
        slot.pointee = 0
        return -1
    }

    private func forgetPeer(_ peer: String) {
        let left = (connectionsByPeer[peer] ?? 1) - 1
        connectionsByPeer[peer] = left > 0 ? left : nil
    }

    /// Whether one more WebSocket from `peer` stays within `maxConnectionsPerAddress`.
    private func peerMayConnect(_ peer: String) -> Bool {
        guard let limit = configuration.maxConnectionsPerAddress else { return true }
        let loopback = peer.hasPrefix("127.") || peer == "::1" || peer.hasPrefix("::ffff:127.")
        return loopback || (connectionsByPeer[peer] ?? 0) < limit
    }

    /// Writes what waits for a connection. lws takes one write per writeable callback (it
    /// reports the pipe choked after any write), so small messages are coalesced: as many whole
    /// messages as fit in 64 KiB go out in one write, each framed here as a complete
    /// WebSocket text frame (server frames are unmasked; this framing is used only without
    /// permessage-deflate, which must frame through lws). A large message goes out through lws a
    /// fragment per callback, so lws never has to copy a remainder it could not send.
    private func writeQueued(_ wsi: OpaquePointer, _ id: UInt64) -> Int32 {
        // Taken out of the table while it is written, so the queue is uniquely referenced and
        // changes in place; every path below puts it back.
        guard var c = connections.removeValue(forKey: id) else { return -1 }
        // A close with 1001 or 4xxx drops what has not started going out. The close itself waits
        // for a callback that wrote nothing: closing right after a write lws could not finish
        // (it keeps the rest and reports choked) loses the close frame, and the client sees the
        // connection dropped.
        let dropRest = c.closing.map { $0.code == 1001 || $0.code >= 4000 } ?? false
        var wrote = false
        if let (message, offset) = c.queue.head, !(dropRest && offset == 0) {
            wrote = true
            // One write per callback: lws reports the pipe choked after any write (checking
            // costs a poll(2) per write and always says so), so the next waits for POLLOUT.
            let batch = configuration.permessageDeflate ? [] :
                c.queue.leadingWhole(maxBytes: Self.batchBytes, maxMessageBytes: Self.fragmentBytes,
                                     overhead: Self.frameHeaderBytes)
            let written: Int32, n: Int
            if batch.count > 1 {
                var p = scratch + Int(SIGHTLINE_LWS_PRE)
                for m in batch {
                    p += Self.writeFrameHeader(length: m.count, to: p)
                    p.update(from: m.payload, count: m.count)
                    p += m.count
                }
                n = p - (scratch + Int(SIGHTLINE_LWS_PRE))
                written = lws_write(wsi, scratch + Int(SIGHTLINE_LWS_PRE), n, LWS_WRITE_HTTP)  // LWS_WRITE_RAW: bytes as they are
                if written >= n { for m in batch { c.queue.wrote(m.count) } }
            } else {
                // Fragments are copied to scratch space because lws writes the frame header into
                // the headroom in front of them, and the message is shared.
                n = min(Self.fragmentBytes, message.count - offset)
                let first = offset == 0, last = offset + n == message.count
                let flags = lws_write_ws_flags(Int32(LWS_WRITE_TEXT.rawValue), first ? 1 : 0, last ? 1 : 0)
                if first && last {
                    written = lws_write(wsi, message.payload, n, lws_write_protocol(UInt32(flags)))
                } else {
                    (scratch + Int(SIGHTLINE_LWS_PRE)).update(from: message.payload + offset, count: n)
                    written = lws_write(wsi, scratch + Int(SIGHTLINE_LWS_PRE), n, lws_write_protocol(UInt32(flags)))
                }
                if written >= n { c.queue.wrote(n) }
            }
            if written < n {
                logger.warning("write to ws-\(id) failed (lws_write gave \(written) of \(n) bytes, \(batch.count) messages); closing it")
                connections[id] = c
                return -1
            }
        }
        if let closing = c.closing, !wrote, c.queue.offset == 0, c.queue.isEmpty || dropRest {
            var bytes = Array(closing.reason.utf8)
            lws_close_reason(wsi, lws_close_status(rawValue: UInt32(closing.code)), &bytes, bytes.count)
            connections[id] = c
            return -1
        }
        let more = !c.queue.isEmpty || c.closing != nil
        connections[id] = c
        if more { lws_callback_on_writable(wsi) }
        return 0
    }

    /// Bytes of an unmasked frame header for a payload of `length` (RFC 6455, 5.2).
    static func frameHeaderBytes(_ length: Int) -> Int {
        length < 126 ? 2 : length < 65536 ? 4 : 10
    }

    /// Writes the header of a final, unmasked text frame; returns its size.
    static func writeFrameHeader(length: Int, to p: UnsafeMutablePointer<UInt8>) -> Int {
        p[0] = 0x81
        if length < 126 {
            p[1] = UInt8(length)
            return 2
        }
        if length < 65536 {
            p[1] = 126
            p[2] = UInt8(length >> 8)
            p[3] = UInt8(length & 0xff)
            return 4
        }
        p[1] = 127
        for i in 0..<8 { p[2 + i] = UInt8((length >> (8 * (7 - i))) & 0xff) }
        return 10
    }

    // MARK: Headers

    func header(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String {
        let length = Int(lws_hdr_total_length(wsi, token))
        guard length > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_copy(wsi, &buffer, Int32(length + 1), token) >= 0 else { return "" }
        return cText(buffer)
    }

    /// The query's pairs as lws decoded them (one fragment per pair; see QueryItems).
    func query(_ wsi: OpaquePointer) -> QueryItems {
        let total = Int(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS))
        guard total > 0 else { return QueryItems() }
        var fragments: [String] = []
        var buffer = [CChar](repeating: 0, count: total + 1)
        var index: Int32 = 0
        while index < 256 {
            let n = lws_hdr_copy_fragment(wsi, &buffer, Int32(buffer.count), WSI_TOKEN_HTTP_URI_ARGS, index)
            if n < 0 { break }
            fragments.append(cText(buffer))
            index += 1
        }
        return QueryItems(fragments: fragments)
    }

    func headers(_ wsi: OpaquePointer) -> [String: String] {
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
        // Headers lws has no index for, looked up by name.
        for name in ["idempotency-key"] {
            let length = Int(lws_hdr_custom_length(wsi, name + ":", Int32(name.utf8.count + 1)))
            guard length > 0, length <= 4096 else { continue }
            var buffer = [CChar](repeating: 0, count: length + 1)
            if lws_hdr_custom_copy(wsi, &buffer, Int32(buffer.count), name + ":", Int32(name.utf8.count + 1)) >= 0 {
                out[name] = cText(buffer)
            }
        }
        return out
    }

    func peer(_ wsi: OpaquePointer) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = lws_get_peer_simple(wsi, &buffer, buffer.count)
        return cText(buffer)
    }

    /// Whether `uri` names a static file whose real path (symlinks resolved) is outside the
    /// static root. Paths of the delegate and the aliases are not files.
    func staticFileLeavesRoot(_ uri: String) -> Bool {
        guard let root = configuration.staticRoot, let realRoot = realPath(root) else { return false }
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        if configuration.callbackPrefixes.contains(where: { path == $0 || path.hasPrefix($0 + "/") })
            || configuration.staticAliases[path] != nil || configuration.webSocketPaths.contains(path) {
            return false
        }
        let file = root + (path.hasSuffix("/") ? path + "index.html" : path)
        guard let real = realPath(file) else { return false }  // missing: lws answers 404
        return real != realRoot && !real.hasPrefix(realRoot + "/")
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// An absent Origin is a client that is not a browser page: allowed.
    func originAllowed(_ origin: String, host: String) -> Bool {
        if origin.isEmpty { return true }
        if let allowed = configuration.allowedOrigins { return allowed.contains(origin) }
        return origin == "http://" + host || origin == "https://" + host
    }

    /// An absent Host (HTTP/1.0) is not a browser: allowed.
    func hostAllowed(_ host: String) -> Bool {
        guard let allowed = configuration.allowedHosts, !host.isEmpty else { return true }
        return allowed.contains(Self.hostName(host))
    }

    /// "Example.COM:8080" -> "example.com", "[::1]:80" -> "::1".
    static func hostName(_ host: String) -> String {
        var name = Substring(host)
        if name.hasPrefix("["), let end = name.firstIndex(of: "]") {
            name = name[name.index(after: name.startIndex)..<end]
        } else if name.filter({ $0 == ":" }).count == 1, let colon = name.firstIndex(of: ":") {
            name = name[..<colon]
        }
        return name.lowercased()
    }

    // MARK: C memory

    func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        cStrings.append(p)
        return p
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
            vhostOptions.append(o)
            next = o
        }
        return next
    }

    private func freeCMemory() {
        cStrings.forEach { free($0) }
        cStrings = []
        mounts.forEach { $0.deallocate() }
        mounts = []
        vhostOptions.forEach { $0.deallocate() }
        vhostOptions = []
        protocols?.deallocate()
        protocols = nil
        extensions?.deallocate()
        extensions = nil
        retry?.deallocate()
        retry = nil
        tickTimer?.deallocate()
        tickTimer = nil
        wakeTimer?.deallocate()
        wakeTimer = nil
    }
}

/// What other threads hand to the loop: work to run on it, and a request to stop. Posting wakes
/// the loop with lws_cancel_service (the one thread-safe lws call); work posted before the loop
/// starts waits for it, work posted after it ended is dropped.
public final class LWSMailbox: Sendable {
    private struct State: ~Copyable {
        var work: [@Sendable () -> Void] = []
        /// The context's address while it can be woken; 0 before and after.
        var context: UInt = 0
        var stopRequested = false
        /// The loop has ended: work is dropped.
        var ended = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Runs `work` on the loop thread soon.
    public func post(_ work: @escaping @Sendable () -> Void) {
        state.withLock { s in
            guard !s.ended else { return }
            s.work.append(work)
            if s.context != 0 { lws_cancel_service(OpaquePointer(bitPattern: s.context)) }
        }
    }

    /// Closes WebSocket clients with 1001, then the loop ends.
    public func requestStop() {
        state.withLock { s in
            s.stopRequested = true
            if s.context != 0 { lws_cancel_service(OpaquePointer(bitPattern: s.context)) }
        }
    }

    func attach(_ context: OpaquePointer) {
        state.withLock { s in
            s.context = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(context)))
            if s.stopRequested || !s.work.isEmpty { lws_cancel_service(context) }
        }
    }

    func detach() {
        state.withLock { s in
            s.context = 0
            s.ended = true
            s.work = []
        }
    }

    func take() -> (work: [@Sendable () -> Void], stop: Bool) {
        state.withLock { s in
            let w = s.work
            s.work = []
            return (w, s.stopRequested)
        }
    }
}

/// Hands a loop-only value to another thread and back: reading `value` anywhere but on the loop
/// thread is a programming error that stops the process (the pattern of swift-nio's NIOLoopBound).
public struct LoopBound<Value>: @unchecked Sendable {
    private let wrapped: Value
    private let server: LWSServer

    /// Call on the loop thread.
    public init(_ value: Value, server: LWSServer) {
        precondition(server.isOnLoop || !server.isRunning, "LoopBound made off the loop thread")
        wrapped = value
        self.server = server
    }

    public var value: Value {
        precondition(server.isOnLoop || !server.isRunning, "LoopBound read off the loop thread")
        return wrapped
    }
}

/// The text of a NUL-terminated C buffer (invalid UTF-8 repaired).
private func cText(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

// Written by the signal handler, read on the loop thread.
nonisolated(unsafe) private var signalReceived: sig_atomic_t = 0

/// The one lws callback: recovers the server from the context's user pointer.
private func lwsCallback(_ wsi: OpaquePointer?, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?,
                         _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
    guard let wsi, let context = lws_get_context(wsi), let owner = lws_context_user(context) else {
        return lws_callback_http_dummy(wsi, reason, user, input, length)
    }
    return Unmanaged<LWSServer>.fromOpaque(owner).takeUnretainedValue().callback(wsi, reason, user, input, length)
}
