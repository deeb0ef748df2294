import Foundation
import InteractionModel
import InteractionStore
import LWS
import Logging

/// The live service: keeps the board from the tailed log, speaks the dashboard protocol
/// (docs/protocol.md) to every WebSocket client and answers the HTTP API.
///
/// Lifetime: one per `sightline serve`. Every method runs on the event-loop thread, except
/// what the tailer and the database pool hand over through `server.post`.
public final class LiveService: LWSServerDelegate, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Accepted tokens; empty: every token (a demo server).
        public var tokens: Set<String> = []
        /// Deltas kept for resuming clients.
        public var resumeCapacity = 100_000
        public var heartbeatSeconds: TimeInterval = 5
        public var depthSampleSeconds: TimeInterval = 30
        public var depthSamples = 120
        /// Deltas per frame at most.
        public var replayFrameDeltas = 200
        public var databaseWorkers = 2
        public var openAPIDocument: String = "{}"

        public init() {}
    }

    private let configuration: Configuration
    private let logger: Logger
    private let conninfo: String
    private let pool: DatabasePool
    private var tailer: Tailer?
    private weak var server: LWSServer?

    private var board: LiveBoard
    private var deltaLog: DeltaLog
    private var sessions: [ConnectionID: Subscription] = [:]
    private var databaseUp = true
    private var databaseChangedAt = Date()
    private var lastTailerContact = Date()
    private var lastHeartbeat = Date()
    private var lastDepthSample = Date.distantPast
    private var depth: [String: [(Date, Int)]] = [:]
    /// The every-queue snapshot, reused while nothing it shows has changed (and within the same
    /// second, so its serverTime stays true): clients that connect together share one buffer.
    private var snapshotCache: (key: String, text: String, message: OutgoingMessage)?
    private var configGeneration = 0
    private var reloadSoon = false
    private var reloading = false
    private let startedAt = Date()
    var metrics = Metrics()

    /// Loads the board from the store (on the calling thread) and prepares the service.
    public init(conninfo: String, configuration: Configuration, logger: Logger) throws {
        self.conninfo = conninfo
        self.configuration = configuration
        self.logger = logger
        let store = try InteractionStore(conninfo: conninfo)
        board = try store.loadBoard(dayStart: Self.startOfDay(Date()))
        deltaLog = DeltaLog(capacity: configuration.resumeCapacity, floor: board.position)
        pool = DatabasePool(conninfo: conninfo, size: configuration.databaseWorkers, logger: logger)
        logger.info("board loaded: \(board.interactions.count) live interactions, \(board.queues.count) queues, \(board.agents.count) agents; tailing from \(board.position)")
    }

    /// Starts tailing the log into `server`'s loop. Call before `server.run()`.
    public func attach(to server: LWSServer) {
        self.server = server
        server.delegate = self
        // The service and the server live as long as the process serves.
        let tailer = Tailer(conninfo: conninfo, from: board.position, logger: logger) { [self] event in
            server.post { self.tailerEvent(event) }
        }
        self.tailer = tailer
        tailer.start()
    }

    public func shutdown() {
        tailer?.stop()
    }

    static func startOfDay(_ now: Date) -> Date {
        Calendar.current.startOfDay(for: now)
    }

    // MARK: The log

    private func tailerEvent(_ event: Tailer.Event) {
        lastTailerContact = Date()
        switch event {
        case .transitions(let rows):
            apply(rows)
        case .databaseUp:
            if !databaseUp { setDatabase(up: true) }
            reloadConfiguration()
        case .databaseDown:
            if databaseUp { setDatabase(up: false) }
        }
    }

    private func apply(_ rows: [Transition]) {
        var deltas: [DeltaLog.Entry] = []
        for t in rows {
            // An agent or queue created by another writer (SQL, another server): learn it.
            if (t.agent.map { board.agents[$0] == nil } ?? false) || (t.queue.map { board.queues[$0] == nil } ?? false) {
                reloadSoon = true
            }
            guard let change = board.apply(t) else { continue }
            var w = JSONWriter(capacity: 640)
            Wire.delta(change, into: &w)
            let entry = DeltaLog.Entry(position: t.position, queue: change.interaction?.queue ?? t.queue, json: w.text)
            deltaLog.append(entry)
            deltas.append(entry)
            metrics.transitionsApplied += 1
        }
        if let at = rows.last?.at { metrics.lastCommitLagSeconds = max(0, Date().timeIntervalSince(at)) }
        if reloadSoon, !reloading {
            reloadSoon = false
            reloadConfiguration()
        }
        guard !deltas.isEmpty, let server else { return }
        let position = board.position
        // Frames of at most `replayFrameDeltas` deltas, encoded once per queue filter.
        var frames: [Set<String>?: [OutgoingMessage]] = [:]
        for (connection, subscription) in sessions where subscription.isLive {
            let filter = subscription.queues
            if frames[filter] == nil {
                let wanted = filter == nil ? deltas : deltas.filter { subscription.wants(queue: $0.queue) }
                frames[filter] = framed(wanted[...], position: position)
            }
            for frame in frames[filter]! {
                if server.send(connection, frame) {
                    metrics.deltaFramesSent += 1
                } else {
                    overflowed(connection)
                    break
                }
            }
        }
    }

    /// Splits deltas into frames; the last frame carries `position`.
    private func framed(_ entries: ArraySlice<DeltaLog.Entry>, position: LogPosition) -> [OutgoingMessage] {
        var out: [OutgoingMessage] = []
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + configuration.replayFrameDeltas, entries.endIndex)
            let last = end == entries.endIndex ? position : entries[end - 1].position
            out.append(OutgoingMessage(Self.deltasFrame(entries[start..<end], position: last)))
            start = end
        }
        return out
    }

    private static func deltasFrame(_ entries: ArraySlice<DeltaLog.Entry>, position: LogPosition) -> String {
        var text = "{\"type\":\"deltas\",\"position\":\"\(position)\",\"deltas\":["
        text.reserveCapacity(entries.reduce(64) { $0 + $1.json.count + 1 })
        var first = true
        for e in entries {
            if !first { text += "," }
            first = false
            text += e.json
        }
        return text + "]}"
    }

    private func setDatabase(up: Bool) {
        databaseUp = up
        databaseChangedAt = Date()
        var w = JSONWriter()
        w.object { o in
            o.field("type", string: "status")
            o.field("database", string: up ? "up" : "down")
            o.field("since", date: databaseChangedAt)
            o.field("position", string: board.position.description)
        }
        broadcast(OutgoingMessage(w.text))
    }

    /// Queues or agents changed (or the database came back): reload them off the loop, then
    /// give every client a fresh snapshot.
    func reloadConfiguration() {
        reloading = true
        let submitted = pool.submit({ store in (try store.queues(), try store.agents()) }) { [weak self] result in
            guard let self, let server = self.server else { return }
            server.post { self.reloading = false }
            guard case .success(let (queues, agents)) = result else { return }
            server.post {
                let changed = Set(queues.map(\.id)) != Set(self.board.queues.keys)
                    || queues.contains { self.board.queues[$0.id] != $0 }
                    || agents.contains { self.board.agents[$0.id] != $0 } || agents.count != self.board.agents.count
                guard changed else { return }
                self.board.queues = Dictionary(uniqueKeysWithValues: queues.map { ($0.id, $0) })
                self.board.agents = Dictionary(uniqueKeysWithValues: agents.map { ($0.id, $0) })
                self.configGeneration += 1
                for (connection, subscription) in self.sessions where subscription.isLive {
                    self.sendSnapshot(connection, filter: subscription.queues)
                }
            }
        }
        if !submitted { reloading = false }
    }

    private func broadcast(_ message: OutgoingMessage) {
        guard let server else { return }
        for (connection, subscription) in sessions where subscription.isLive {
            if !server.send(connection, message) { overflowed(connection) }
        }
    }

    // MARK: Snapshots

    private var snapshotKey: String {
        "\(board.position)|\(configGeneration)|\(databaseUp)|\(Int(Date().timeIntervalSince1970))"
    }

    /// The every-queue snapshot, text and shared message.
    private func everyQueueSnapshot() -> (text: String, message: OutgoingMessage) {
        let key = snapshotKey
        if let cache = snapshotCache, cache.key == key { return (cache.text, cache.message) }
        let text = encodeSnapshot(filter: nil)
        let message = OutgoingMessage(text)
        snapshotCache = (key, text, message)
        return (text, message)
    }

    func snapshot(filter: Set<String>?) -> String {
        filter == nil ? everyQueueSnapshot().text : encodeSnapshot(filter: filter)
    }

    private func encodeSnapshot(filter: Set<String>?) -> String {
        let now = Date()
        func wants(_ queue: String?) -> Bool {
            guard let filter else { return true }
            return queue.map(filter.contains) ?? false
        }
        var w = JSONWriter(capacity: 4096 + board.interactions.count * 400)
        w.object { o in
            o.field("type", string: "snapshot")
            o.field("position", string: board.position.description)
            o.field("serverTime", date: now)
            o.field("database", string: databaseUp ? "up" : "down")
            if !databaseUp { o.field("staleSince", date: databaseChangedAt) }
            o.field("board") { w in
                w.object { o in
                    o.field("queues") { w in
                        w.array(board.queues.values.filter { wants($0.id) }.sorted { $0.id < $1.id }) { w, q in
                            Wire.queue(q, today: board.queueToday[q.id] ?? QueueToday(), into: &w)
                        }
                    }
                    o.field("agents") { w in
                        let agents = board.agents.values.filter { a in filter == nil || a.queues.contains { wants($0) } }
                        w.array(agents.sorted { $0.id < $1.id }) { w, a in
                            Wire.agent(a, today: board.agentToday[a.id] ?? AgentToday(), into: &w)
                        }
                    }
                    o.field("interactions") { w in
                        let live = board.interactions.values.filter { wants($0.queue) }.sorted { $0.id < $1.id }
                        w.array(live) { w, i in Wire.interaction(i, into: &w) }
                    }
                    o.field("depth") { w in
                        w.object { o in
                            for (queue, samples) in depth.sorted(by: { $0.key < $1.key }) where wants(queue) {
                                o.field(queue) { w in
                                    w.array(samples) { w, s in
                                        w.raw("[")
                                        w.date(s.0)
                                        w.raw(",\(s.1)]")
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return w.text
    }

    private func sendSnapshot(_ connection: ConnectionID, filter: Set<String>?) {
        guard let server else { return }
        let message = filter == nil ? everyQueueSnapshot().message : OutgoingMessage(encodeSnapshot(filter: filter))
        metrics.snapshotsSent += 1
        if !server.send(connection, message) {
            // Even a snapshot does not fit: the client is hopeless.
            closeSession(connection, code: 4429, reason: "too slow: cannot take a snapshot")
        }
    }

    private func overflowed(_ connection: ConnectionID) {
        guard var subscription = sessions[connection] else { return }
        let actions = subscription.overflowed(now: Date())
        sessions[connection] = subscription
        metrics.resyncs += 1
        server?.discardQueued(connection)
        logger.debug("client \(connection) fell behind; \(actions)")
        perform(actions, for: connection)
    }

    private func closeSession(_ connection: ConnectionID, code: UInt16, reason: String) {
        if code == 4429 { metrics.slowClientsClosed += 1 }
        sessions[connection] = nil
        server?.close(connection, code: code, reason: reason)
    }

    private func perform(_ actions: [Subscription.Action], for connection: ConnectionID) {
        guard let server else { return }
        for action in actions {
            switch action {
            case .sendSnapshot:
                sendSnapshot(connection, filter: sessions[connection]?.queues)
            case .resume(let from):
                guard let subscription = sessions[connection] else { return }
                metrics.resumes += 1
                _ = server.send(connection, OutgoingMessage("{\"type\":\"resumed\",\"position\":\"\(from)\"}"))
                let missed = deltaLog.after(from).filter { subscription.wants(queue: $0.queue) }
                for frame in framed(missed[...], position: board.position) where !server.send(connection, frame) {
                    overflowed(connection)
                    return
                }
            case .sendPong:
                _ = server.send(connection, OutgoingMessage("{\"type\":\"pong\"}"))
            case .close(let code, let reason):
                closeSession(connection, code: code, reason: reason)
            }
        }
    }

    // MARK: LWSServerDelegate

    public func server(_ server: LWSServer, didOpen connection: ConnectionID, upgrade: WebSocketUpgrade) {
        sessions[connection] = Subscription(openedAt: Date())
        metrics.connectionsOpened += 1
        // `/live?token=...&queues=a,b&resume=P` subscribes at once (clients that cannot send a
        // first message, like load generators; browsers send `hello`).
        let query = queryItems(upgrade.query)
        if query["token"] != nil || query["subscribe"] != nil {
            var hello: [String: Any] = ["type": "hello"]
            hello["token"] = query["token"]
            hello["queues"] = query["queues"].map { $0.split(separator: ",").map(String.init) }
            hello["resume"] = query["resume"]
            if let data = try? JSONSerialization.data(withJSONObject: hello), let text = String(data: data, encoding: .utf8) {
                self.server(server, connection: connection, didReceive: text)
            }
        }
    }

    public func server(_ server: LWSServer, connection: ConnectionID, didReceive text: String) {
        guard var subscription = sessions[connection] else { return }
        let actions = subscription.received(
            text,
            canResume: { deltaLog.covers($0, newest: board.position) },
            tokenAccepted: { token in configuration.tokens.isEmpty || token.map(configuration.tokens.contains) == true })
        sessions[connection] = subscription
        perform(actions, for: connection)
    }

    public func server(_ server: LWSServer, didClose connection: ConnectionID) {
        sessions[connection] = nil
    }

    public func serverTick(_ server: LWSServer) {
        let now = Date()
        for (connection, var subscription) in sessions {
            let actions = subscription.tick(now: now)
            sessions[connection] = subscription
            if !actions.isEmpty { perform(actions, for: connection) }
        }
        if now.timeIntervalSince(lastHeartbeat) >= configuration.heartbeatSeconds {
            lastHeartbeat = now
            var w = JSONWriter()
            w.object { o in
                o.field("type", string: "heartbeat")
                o.field("position", string: board.position.description)
                o.field("serverTime", date: now)
                o.field("database", string: databaseUp ? "up" : "down")
            }
            broadcast(OutgoingMessage(w.text))
        }
        if now.timeIntervalSince(lastDepthSample) >= configuration.depthSampleSeconds {
            lastDepthSample = now
            for queue in board.queues.keys {
                var samples = depth[queue] ?? []
                samples.append((now, board.waiting(in: queue).count))
                if samples.count > configuration.depthSamples { samples.removeFirst(samples.count - configuration.depthSamples) }
                depth[queue] = samples
            }
        }
        let today = Self.startOfDay(now)
        if today > board.dayStart {
            board.startDay(today)
            configGeneration += 1
            for (connection, subscription) in sessions where subscription.isLive {
                sendSnapshot(connection, filter: subscription.queues)
            }
        }
    }

    public func server(_ server: LWSServer, didReceive request: HTTPRequest) {
        metrics.httpRequests += 1
        do {
            try route(request, server: server)
        } catch {
            let e = APIError(error)
            server.respond(request.id, .json(status: e.status, e.json))
        }
    }

    // MARK: HTTP API

    private func authorized(_ request: HTTPRequest) -> Bool {
        guard !configuration.tokens.isEmpty else { return true }
        if let header = request.headers["authorization"], header.hasPrefix("Bearer ") {
            return configuration.tokens.contains(String(header.dropFirst(7)))
        }
        return queryItems(request.query)["token"].map(configuration.tokens.contains) ?? false
    }

    private func route(_ request: HTTPRequest, server: LWSServer) throws {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let method = request.method
        func requireMethod(_ allowed: String) throws {
            guard method == allowed else {
                throw APIError(status: 405, code: "method_not_allowed", message: "\(request.path) takes \(allowed), not \(method)")
            }
        }
        switch parts.first {
        case "healthz":
            try requireMethod("GET")
            let lag = Date().timeIntervalSince(lastTailerContact)
            var w = JSONWriter()
            w.object { o in
                o.field("status", string: databaseUp ? "ok" : "degraded")
                o.field("database", string: databaseUp ? "up" : "down")
                o.field("position", string: board.position.description)
                o.field("secondsSinceTailerContact", double: lag)
                o.field("liveInteractions", int: board.interactions.count)
                o.field("clients", int: sessions.count)
                o.field("uptimeSeconds", double: Date().timeIntervalSince(startedAt))
            }
            server.respond(request.id, .json(status: databaseUp ? 200 : 503, w.text))
            return
        case "metrics":
            try requireMethod("GET")
            var response = HTTPResponse.text(status: 200, metrics.prometheus(service: self))
            response.contentType = "text/plain; version=0.0.4; charset=utf-8"
            server.respond(request.id, response)
            return
        case "api":
            break
        default:
            throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)")
        }
        let rest = Array(parts.dropFirst())
        if rest == ["openapi.json"] {
            try requireMethod("GET")
            server.respond(request.id, .json(status: 200, configuration.openAPIDocument))
            return
        }
        guard authorized(request) else {
            throw APIError(status: 401, code: "unauthorized", message: "a valid token is required",
                           hint: "send Authorization: Bearer TOKEN")
        }
        let query = queryItems(request.query)
        switch (method, rest.count, rest.first) {
        case ("GET", 1, "board"):
            let filter = query["queues"].map { Set($0.split(separator: ",").map(String.init)) }
            server.respond(request.id, .json(status: 200, snapshot(filter: filter)))
        case ("GET", 1, "history"):
            let limit = try query["limit"].map { text -> Int in
                guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit must be 1 to 1000") }
                return n
            } ?? 50
            let queue = query["queue"]
            defer_(request) { store in Wire.history(try store.history(limit: limit, queue: queue)) }
        case ("GET", 2, "interactions"), ("GET", 3, "interactions"):
            let id = try interactionID(rest[1])
            guard rest.count == 2 || rest[2] == "path" else {
                throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)")
            }
            let live = board.interactions[id]
            let withLive = rest.count == 2
            defer_(request) { store in
                guard let path = try store.callerPath(of: id) else {
                    throw APIError(status: 404, code: "unknown_interaction", message: "unknown interaction \(id)")
                }
                if !withLive { return Wire.path(path) }
                var w = JSONWriter()
                w.object { o in
                    o.field("interaction") { w in if let live { Wire.interaction(live, into: &w) } else { w.raw("null") } }
                    o.field("path", raw: Wire.path(path))
                }
                return w.text
            }
        case ("POST", 1, "interactions"):
            let op = try IngestOperation.parse(try jsonObject(request.body), op: "create")
            ingest(request, [op], status: 201)
        case ("POST", 3, "interactions") where rest[2] == "transitions":
            let op = try IngestOperation.parse(try jsonObject(request.body), op: "transition", interaction: try interactionID(rest[1]))
            ingest(request, [op], status: 200)
        case ("POST", 3, "interactions") where rest[2] == "transfers":
            let op = try IngestOperation.parse(try jsonObject(request.body), op: "transfer", interaction: try interactionID(rest[1]))
            ingest(request, [op], status: 201)
        case ("POST", 1, "batch"):
            ingest(request, try IngestOperation.parseBatch(try jsonObject(request.body)), status: 200, batch: true)
        case ("POST", 1, "queues"):
            var f = Fields(try jsonObject(request.body))
            let q = QueueConfig(
                id: try f.string("id", required: true, maxLength: 64)!, name: try f.string("name", required: true)!,
                serviceLevelSeconds: Int(try f.int("serviceLevelSeconds", range: 1...86400) ?? 20),
                serviceLevelTargetPercent: Int(try f.int("serviceLevelTargetPercent", range: 1...100) ?? 80),
                waitWarningSeconds: Int(try f.int("waitWarningSeconds", range: 1...86400) ?? 30),
                waitAlarmSeconds: Int(try f.int("waitAlarmSeconds", range: 1...86400) ?? 60),
                holdAlarmSeconds: Int(try f.int("holdAlarmSeconds", range: 1...86400) ?? 120))
            try f.finish()
            defer_(request, status: 200) { store in try store.upsertQueue(q); return "{\"id\":\"\(q.id)\"}" } then: { [weak self] in
                self?.reloadConfiguration()
            }
        case ("POST", 1, "agents"):
            var f = Fields(try jsonObject(request.body))
            let a = AgentConfig(id: try f.string("id", required: true, maxLength: 64)!, name: try f.string("name", required: true)!,
                                queues: try f.strings("queues") ?? [], isVoiceApplication: try f.bool("voiceApplication") ?? false)
            try f.finish()
            defer_(request, status: 200) { store in try store.upsertAgent(a); return "{\"id\":\"\(a.id)\"}" } then: { [weak self] in
                self?.reloadConfiguration()
            }
        default:
            if ["board", "history", "interactions", "batch", "queues", "agents"].contains(rest.first ?? "") {
                throw APIError(status: 405, code: "method_not_allowed", message: "\(method) is not allowed on \(request.path)")
            }
            throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)", hint: "see /api/openapi.json")
        }
    }

    private func interactionID(_ text: String) throws -> Int64 {
        guard let id = Int64(text), id > 0 else {
            throw APIError(status: 400, code: "bad_request", message: "\"\(text.prefix(40))\" is not an interaction id")
        }
        return id
    }

    /// Runs `job` on a database worker and answers with its JSON (or its error).
    private func defer_(_ request: HTTPRequest, status: Int = 200, _ job: @escaping (InteractionStore) throws -> String,
                        then: (@Sendable () -> Void)? = nil) {
        let id = request.id
        guard let server else { return }
        let accepted = pool.submit(job) { result in
            server.post {
                switch result {
                case .success(let body):
                    server.respond(id, .json(status: status, body))
                    then?()
                case .failure(let error):
                    let e = APIError(error)
                    server.respond(id, .json(status: e.status, e.json))
                }
            }
        }
        if !accepted {
            let e = APIError(status: 503, code: "busy", message: "too many requests waiting for the database", hint: "retry shortly")
            server.respond(id, .json(status: 503, e.json))
        }
    }

    private func ingest(_ request: HTTPRequest, _ operations: [IngestOperation], status: Int, batch: Bool = false) {
        metrics.ingestOperations += operations.count
        defer_(request, status: status) { store in
            func run() throws -> [(Int64, Transition?)] {
                var results: [(Int64, Transition?)] = []
                var created: [Int64] = []
                for (index, op) in operations.enumerated() {
                    do {
                        let r = try op.perform(store, results: created)
                        results.append(r)
                        created.append(r.0)
                    } catch {
                        throw APIError(error, index: batch ? index : nil)
                    }
                }
                return results
            }
            let results = operations.count > 1 ? try store.transaction(run) : try run()
            var w = JSONWriter()
            func one(_ o: inout ObjectWriter, _ op: IngestOperation, _ r: (Int64, Transition?)) {
                switch op {
                case .create: o.field("id", int: r.0)
                case .transfer(let ref, _, _, _, _):
                    o.field("id", int: r.0)
                    if case .id(let original) = ref { o.field("original", int: original) }
                case .transition:
                    o.field("id", int: r.0)
                    if let t = r.1 { o.field("transition") { Wire.transition(t, into: &$0) } }
                }
            }
            if batch {
                w.object { o in
                    o.field("results") { w in
                        w.array(zip(operations, results)) { w, pair in w.object { o in one(&o, pair.0, pair.1) } }
                    }
                }
            } else {
                w.object { o in one(&o, operations[0], results[0]) }
            }
            return w.text
        }
    }

    // MARK: For metrics

    var clientCount: Int { sessions.count }
    var liveClientCount: Int { sessions.values.filter(\.isLive).count }
    var liveInteractionCount: Int { board.interactions.count }
    var isDatabaseUp: Bool { databaseUp }
    var boardForMetrics: LiveBoard { board }
}

func queryItems(_ query: String) -> [String: String] {
    var items: [String: String] = [:]
    for pair in query.split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
        let key = kv[0].removingPercentEncoding ?? kv[0]
        let value = kv.count > 1 ? (kv[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? kv[1]) : ""
        items[key] = value
    }
    return items
}
