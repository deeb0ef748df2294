import Foundation
import InteractionModel
import InteractionStore
import LWS

/// Everything the live server knows, as one value: the board, the recent deltas, every
/// dashboard session, the snapshot cache and the counters. Events come in as methods named after
/// what happened; each returns the effects to perform. No I/O and no clock of its own (`now` is
/// an argument), so tests drive it without sockets or a database; `LiveService` performs the
/// effects on the loop thread.
///
/// The fan-out works per tick: deltas applied since the last flush go out together, one frame
/// per distinct queue filter, shared by every session with that filter. When nothing went out
/// for a tick, a delta goes out at once; under load each client gets at most one frame per tick.
/// Snapshots are built off the loop (`buildSnapshots`), at most one job at a time, one encoding
/// per filter, and reused for `snapshotMaxAge`: a client that gets a cached snapshot at position
/// P also gets the deltas after P from the resume log, so it misses nothing.
struct LiveState {
    struct Limits: Sendable {
        enum Error: Swift.Error, CustomStringConvertible {
            case outOfRange(String)
            var description: String {
                switch self { case .outOfRange(let what): return what }
            }
        }

        /// Deltas kept for resuming clients.
        var resumeCapacity = 100_000
        var heartbeatSeconds: TimeInterval = 5
        /// The fan-out tick: under load a client gets at most one frame per tick. It stretches up
        /// to `maxBatchMilliseconds` while clients are still writing earlier frames.
        var batchMilliseconds = 10
        var maxBatchMilliseconds = 100
        /// Deltas per frame at most (a frame is split beyond). 64 deltas are about 32 KiB, one
        /// coalesced write; readers that look at a bounded number of ids per message (the
        /// shared load client counts at most 64) see every one.
        var frameDeltas = 64
        /// A resume that would replay more than this gets a snapshot instead.
        var maxReplayDeltas = 20_000
        /// A snapshot is reused this long (the deltas after it bring it up to date)...
        var snapshotMaxAge: TimeInterval = 1
        /// ...and while at most this many deltas came after it: a client resynchronised because it
        /// fell behind must not be handed a long catch-up that makes it fall behind again.
        var snapshotMaxCatchUp = 256
        var depthSampleSeconds: TimeInterval = 30
        var depthSamples = 120

        init() {}

        /// Checks every limit (a zero frame size would loop, a zero capacity would lose deltas).
        init(resumeCapacity: Int, heartbeatSeconds: TimeInterval, batchMilliseconds: Int, frameDeltas: Int = 64,
             maxReplayDeltas: Int = 20_000, snapshotMaxAge: TimeInterval = 1) throws {
            guard resumeCapacity >= 100 else { throw Error.outOfRange("resume capacity must be at least 100") }
            guard heartbeatSeconds >= 0.05, heartbeatSeconds <= 3600 else { throw Error.outOfRange("heartbeat must be 0.05 to 3600 s") }
            guard (1...1000).contains(batchMilliseconds) else { throw Error.outOfRange("batch tick must be 1 to 1000 ms") }
            guard frameDeltas >= 1 else { throw Error.outOfRange("deltas per frame must be at least 1") }
            guard maxReplayDeltas >= 1 else { throw Error.outOfRange("replayed deltas must be at least 1") }
            guard snapshotMaxAge >= 0 else { throw Error.outOfRange("snapshot age must not be negative") }
            self.resumeCapacity = resumeCapacity
            self.heartbeatSeconds = heartbeatSeconds
            self.batchMilliseconds = batchMilliseconds
            self.maxBatchMilliseconds = max(batchMilliseconds, 100)
            self.frameDeltas = frameDeltas
            self.maxReplayDeltas = maxReplayDeltas
            self.snapshotMaxAge = snapshotMaxAge
        }
    }

    /// A queue filter: nil is every queue.
    typealias Filter = Set<String>?

    enum Effect {
        /// Queue a message; if the connection refuses it (over its bound), call `overflowed`.
        case send(ConnectionID, OutgoingMessage)
        case discardQueued(ConnectionID)
        case close(ConnectionID, code: UInt16, reason: String)
        /// Build these snapshots off the loop, then call `snapshotsBuilt`.
        case buildSnapshots(SnapshotJob)
        /// Read queues and agents off the loop, then call `configurationLoaded`.
        case reloadConfiguration
        /// Read the live figures off the loop (`sightline.live_figures`), then call `figuresLoaded`.
        case loadFigures
        /// Call `flush` after this long.
        case scheduleFlush(milliseconds: Int)
        /// Alerts fired or resolved: write them to the outbox, which delivers them.
        case alertsDecided([AlertEvent])
        /// Read the queues' figures over these alert windows (seconds) off the loop, then call
        /// `alertFiguresLoaded`.
        case loadAlertFigures(Set<Double>)
        case log(LogLevel, String)
    }

    enum LogLevel: Sendable, Equatable { case debug, info, warning }

    /// One dashboard connection.
    struct Session {
        var subscription: Subscription
        /// A snapshot was asked for and has not been sent: no deltas until it is.
        var awaitingSnapshot = false
        /// The client's address is this machine (tokens may be optional then).
        var loopback = false
        /// The figures last sent to a wallboard session.
        var lastFigures: String?

        /// A wallboard token's session: figures only (WallboardView).
        var isWallboard: Bool { subscription.principal?.role == .wallboard }
    }

    struct Counters: Sendable {
        var transitionsApplied = 0
        var presenceChangesApplied = 0
        var deltaFramesSent = 0
        var snapshotsSent = 0
        var snapshotsBuilt = 0
        var resumes = 0
        var resyncs = 0
        var slowClientsClosed = 0
        var connectionsOpened = 0
        var httpRequests = 0
        var ingestOperations = 0
        var skippedRows = 0
        var lastCommitLagSeconds = 0.0
    }

    struct SkippedRow: Sendable {
        var position: LogPosition
        var interaction: Int64?
        var reason: String
        var at: Date
    }

    let limits: Limits
    /// The tokens accepted now (reloaded from SQL; `tokensLoaded`).
    private(set) var access: TokenTable
    private(set) var board: LiveBoard
    private(set) var deltaLog: DeltaLog
    private(set) var sessions: [ConnectionID: Session] = [:]
    private(set) var counters = Counters()
    private(set) var databaseUp = true
    private(set) var databaseChangedAt: Date
    private(set) var lastTailerContact: Date
    private(set) var lastSkipped: SkippedRow?
    private(set) var depth: [String: [DepthSample]] = [:]
    /// Everything up to here went out to every live session (or is covered by its snapshot).
    private(set) var flushedPosition: LogPosition
    private var lastFlushAt = Date.distantPast
    private var flushScheduled = false
    /// The tick in force: `batchMilliseconds`, stretched while clients fall behind.
    private(set) var tickMilliseconds: Double
    /// Connections with frames still waiting to be written, as the server last said.
    private var backloggedClients = 0
    private var lastHeartbeat: Date
    private var lastDepthSample = Date.distantPast
    private var snapshotCache: [Filter: CachedSnapshot] = [:]
    /// Grows when the configuration (or the day) changes; a snapshot job started before that
    /// holds the old queues and agents and is thrown away when it finishes.
    private var configurationGeneration = 0
    private var snapshotJobGeneration = 0
    private var snapshotJobInFlight = false
    private var reloadInFlight = false
    private var reloadWanted = false
    /// The alert rules and what they decided so far (LiveState+Alerts.swift).
    var alerts: AlertEvaluator
    var lastAlertEvaluation = Date.distantPast
    var alertWindows: [Double: [String: WindowFigures]] = [:]
    var alertWindowsLoad = (inFlight: false, requestedAt: Date.distantPast)
    private(set) var figures = FiguresFeed()

    struct CachedSnapshot {
        var position: LogPosition
        var builtAt: Date
        var message: OutgoingMessage
    }

    init(board: LiveBoard, limits: Limits, access: TokenTable, now: Date,
         alerts: AlertConfiguration = AlertConfiguration()) {
        self.board = board
        self.alerts = AlertEvaluator(configuration: alerts)
        self.limits = limits
        self.access = access
        deltaLog = DeltaLog(capacity: limits.resumeCapacity, floor: board.position)
        flushedPosition = board.position
        tickMilliseconds = Double(limits.batchMilliseconds)
        databaseChangedAt = now
        lastTailerContact = now
        lastHeartbeat = now
    }

    var liveSessionCount: Int { sessions.values.filter { $0.subscription.isLive }.count }

    // MARK: The log

    /// Rows read by the tailer, in commit order.
    mutating func rowsArrived(_ rows: [LogRow], now: Date) -> [Effect] {
        lastTailerContact = now
        var effects: [Effect] = []
        var lastAt: Date?
        for row in rows {
            switch row {
            case .unreadable(let position, let interaction, let reason):
                // Reported and skipped in its place; the stream goes on after it.
                board.setPosition(position)
                counters.skippedRows += 1
                lastSkipped = SkippedRow(position: position, interaction: interaction, reason: reason, at: now)
                effects.append(.log(.warning, "skipped log row \(position)\(interaction.map { " of interaction \($0)" } ?? ""): \(reason)"))
            case .transition(let t):
                lastAt = t.at
                // An agent or queue created by another writer: learn it.
                if (t.agent.map { board.agents[$0] == nil } ?? false) || (t.queue.map { board.queues[$0] == nil } ?? false) {
                    effects += reloadConfiguration()
                }
                guard let change = board.apply(t) else { continue }
                var w = JSONWriter(capacity: 640)
                Wire.delta(change, into: &w)
                var entry = DeltaLog.Entry(position: t.position, queue: change.interaction?.queue ?? t.queue, json: w.text)
                if let transfer = change.interaction?.transfer {
                    var hidden = JSONWriter(capacity: 640)
                    Wire.delta(change, hidingTransferTarget: true, into: &hidden)
                    entry.transferTargetQueues = board.queuesSeeingTarget(of: transfer)
                    entry.jsonHidingTransferTarget = hidden.text
                }
                deltaLog.append(entry)
                counters.transitionsApplied += 1
                figures.logMoved()
            case .presence(let p):
                lastAt = p.at
                if board.agents[p.agent] == nil { effects += reloadConfiguration() }
                guard let presence = board.apply(p) else { continue }
                var w = JSONWriter(capacity: 400)
                Wire.presenceDelta(p, presence: presence, into: &w)
                deltaLog.append(DeltaLog.Entry(position: p.position, queue: nil, json: w.text,
                                               agentQueues: board.agents[p.agent]?.queues ?? []))
                counters.presenceChangesApplied += 1
                figures.logMoved()
            }
        }
        if let lastAt { counters.lastCommitLagSeconds = max(0, now.timeIntervalSince(lastAt)) }
        return effects + flushSoon(now: now) + loadFiguresIfDue(now: now)
    }

    // MARK: Figures

    private mutating func loadFiguresIfDue(now: Date) -> [Effect] {
        figures.shouldLoad(now: now) ? [.loadFigures] : []
    }

    /// A read of the live figures finished (nil: it failed). Every live session gets the entries
    /// of its filter that changed (all of them when the period changed).
    mutating func figuresLoaded(_ loaded: LiveFigures?, took duration: TimeInterval = 0, now: Date) -> [Effect] {
        guard let update = figures.loaded(loaded, took: duration), let current = figures.current else { return [] }
        // Wallboards get the queues' figures only (no agent's).
        var messages: [WallboardView.Key: OutgoingMessage?] = [:]
        var effects: [Effect] = []
        for (connection, session) in sessions where session.subscription.isLive && !session.awaitingSnapshot {
            let filter = session.subscription.queues
            let key = WallboardView.Key(filter: filter, wallboard: session.isWallboard)
            if messages[key] == nil {
                let queues = board.queueIDs(for: filter).filter(update.queues.contains)
                let agents = key.wallboard ? [] : board.agentIDs(for: filter).filter(update.agents.contains)
                messages[key] = update.complete || !queues.isEmpty || !agents.isEmpty
                    ? OutgoingMessage(FiguresFeed.message(current, queues: queues, agents: agents, complete: update.complete, now: now))
                    : .some(nil)
            }
            if let message = messages[key] ?? nil { effects.append(.send(connection, message)) }
        }
        return effects
    }

    /// Every figure of `filter`, as a complete `figures` message (after a resume).
    private func completeFigures(for filter: Filter, now: Date) -> OutgoingMessage? {
        guard let current = figures.current else { return nil }
        return OutgoingMessage(FiguresFeed.message(current, queues: board.queueIDs(for: filter), agents: board.agentIDs(for: filter),
                                                   complete: true, now: now))
    }

    /// Sends now when the last flush is a tick old, else once the tick is over.
    private mutating func flushSoon(now: Date) -> [Effect] {
        guard board.position > flushedPosition else { return [] }
        let elapsed = now.timeIntervalSince(lastFlushAt) * 1000
        if elapsed >= tickMilliseconds { return flush(now: now) }
        guard !flushScheduled else { return [] }
        flushScheduled = true
        return [.scheduleFlush(milliseconds: max(1, Int((tickMilliseconds - elapsed).rounded())))]
    }

    /// How many connections still have frames waiting (the server's count, before a flush).
    /// While more than a tenth of the live sessions do, the tick stretches (x1.5, up to
    /// `maxBatchMilliseconds`): fewer, larger frames cost fewer writes and wake-ups for the same
    /// deltas. When they keep up it shrinks back (x0.75) to `batchMilliseconds`.
    mutating func clientsBacklogged(_ count: Int) {
        backloggedClients = count
    }

    private mutating func adaptTick() {
        let live = max(1, sessions.count)
        if backloggedClients * 10 > live {
            tickMilliseconds = min(Double(limits.maxBatchMilliseconds), tickMilliseconds * 1.5)
        } else {
            tickMilliseconds = max(Double(limits.batchMilliseconds), tickMilliseconds * 0.75)
        }
    }

    /// Sends every delta since the last flush to every live session: one shared frame (or a few,
    /// beyond `frameDeltas`) per distinct filter.
    mutating func flush(now: Date) -> [Effect] {
        flushScheduled = false
        guard board.position > flushedPosition else { return [] }
        adaptTick()
        let entries = deltaLog.after(flushedPosition)
        let position = board.position
        flushedPosition = position
        lastFlushAt = now
        guard !entries.isEmpty else { return [] }
        var frames: [Filter: [OutgoingMessage]] = [:]
        var effects: [Effect] = []
        effects += wallboardFigures(position: position)
        for (connection, session) in sessions where session.subscription.isLive && !session.awaitingSnapshot && !session.isWallboard {
            let filter = session.subscription.queues
            if frames[filter] == nil {
                frames[filter] = framed(entries, filter: filter, position: position)
            }
            for frame in frames[filter]! {
                effects.append(.send(connection, frame))
                counters.deltaFramesSent += 1
            }
        }
        return effects
    }

    /// A `wallboard` message to every wallboard session whose counts changed.
    private mutating func wallboardFigures(position: LogPosition) -> [Effect] {
        var computed: [Filter: String] = [:]
        var effects: [Effect] = []
        for (connection, session) in sessions where session.isWallboard && session.subscription.isLive && !session.awaitingSnapshot {
            let filter = session.subscription.queues
            let figures = computed[filter] ?? WallboardView.figuresJSON(board, filter: filter)
            computed[filter] = figures
            guard figures != session.lastFigures else { continue }
            sessions[connection]?.lastFigures = figures
            effects.append(.send(connection, OutgoingMessage(WallboardView.figuresMessage(figures, position: position))))
        }
        return effects
    }

    /// Frames of at most `frameDeltas` deltas that `filter` wants; the last carries `position`.
    private func framed(_ entries: ArraySlice<DeltaLog.Entry>, filter: Filter, position: LogPosition) -> [OutgoingMessage] {
        let wanted = filter == nil ? Array(entries) : entries.filter { $0.wanted(by: filter) }
        guard !wanted.isEmpty else { return [] }
        var out: [OutgoingMessage] = []
        var start = 0
        while start < wanted.count {
            let end = min(start + limits.frameDeltas, wanted.count)
            let last = end == wanted.count ? position : wanted[end - 1].position
            out.append(OutgoingMessage(Self.deltasFrame(wanted[start..<end], position: last, filter: filter)))
            start = end
        }
        return out
    }

    static func deltasFrame(_ entries: ArraySlice<DeltaLog.Entry>, position: LogPosition, filter: Filter = nil) -> String {
        var text = "{\"type\":\"deltas\",\"position\":\"\(position)\",\"deltas\":["
        text.reserveCapacity(entries.reduce(64) { $0 + $1.json.utf8.count + 1 })
        var first = true
        for e in entries {
            if !first { text += "," }
            first = false
            text += e.json(for: filter)
        }
        return text + "]}"
    }

    /// The tailer polled and found its connection fine (it says so at least once a second), so
    /// `/healthz` can tell a quiet log from a stuck tailer.
    mutating func tailerAlive(now: Date) {
        lastTailerContact = now
    }

    mutating func databaseChanged(up: Bool, now: Date) -> [Effect] {
        lastTailerContact = now
        var effects: [Effect] = []
        if up { effects += reloadConfiguration() }
        guard up != databaseUp else { return effects }
        databaseUp = up
        databaseChangedAt = now
        snapshotCache = [:]
        var w = JSONWriter()
        w.object { o in
            o.field("type", string: "status")
            o.field("database", string: up ? "up" : "down")
            o.field("since", date: now)
            o.field("position", string: flushedPosition.description)
        }
        return effects + flush(now: now) + broadcast(OutgoingMessage(w.text))
    }

    /// Someone changed queues or agents (NOTIFY sightline_config), or a row named unknown ones.
    mutating func reloadConfiguration() -> [Effect] {
        if reloadInFlight {
            reloadWanted = true
            return []
        }
        reloadInFlight = true
        return [.reloadConfiguration]
    }

    /// Queues and agents as the store has them now (nil: the read failed).
    /// `reasons`: the not-ready reasons, when they were read too.
    mutating func configurationLoaded(_ loaded: (queues: [QueueConfig], agents: [AgentConfig])?, reasons: [PresenceReason]? = nil,
                                      now: Date) -> [Effect] {
        reloadInFlight = false
        var effects: [Effect] = []
        if reloadWanted {
            reloadWanted = false
            effects += reloadConfiguration()
        }
        guard let (queues, agents) = loaded else { return effects }
        let newQueues = Dictionary(queues.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let newAgents = Dictionary(agents.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let newReasons = reasons ?? board.presenceReasons
        guard newQueues != board.queues || newAgents != board.agents || newReasons != board.presenceReasons else { return effects }
        board.queues = newQueues
        board.agents = newAgents
        board.presenceReasons = newReasons
        figures.logMoved()
        return effects + resynchroniseAll(now: now)
    }

    /// Every live session gets a fresh snapshot (configuration or day changed).
    private mutating func resynchroniseAll(now: Date) -> [Effect] {
        snapshotCache = [:]
        configurationGeneration += 1
        var effects: [Effect] = []
        for (connection, session) in sessions where session.subscription.isLive {
            effects += requestSnapshot(connection, now: now)
        }
        return effects
    }

    // MARK: Tokens

    /// The tokens as SQL reports them now (on NOTIFY and every second): the streams of tokens
    /// that were revoked or expired close (4401), as do all when the server's mode changed.
    mutating func tokensLoaded(_ table: TokenTable, now: Date) -> [Effect] {
        guard table != access else { return [] }
        let wasOpen = access.isOpen
        access = table
        var effects: [Effect] = []
        if wasOpen != table.isOpen {
            effects.append(.log(.warning, table.isOpen ? "no tokens configured any more: serving only clients on this machine"
                                                       : "tokens are configured now: every client needs one"))
        }
        for (connection, session) in sessions.sorted(by: { $0.key < $1.key }) where session.subscription.principal != nil {
            guard case .failure(let refusal) = access.authorize(session.subscription.token, loopback: session.loopback, for: .live)
            else { continue }
            var s = session
            let actions = s.subscription.accessEnded(refusal)
            sessions[connection] = s
            effects += perform(actions, for: connection, now: now)
        }
        return effects
    }

    // MARK: Sessions

    mutating func clientOpened(_ connection: ConnectionID, query: QueryItems, loopback: Bool = true, now: Date) -> [Effect] {
        sessions[connection] = Session(subscription: Subscription(openedAt: now), loopback: loopback)
        counters.connectionsOpened += 1
        // A URL ends up in logs (proxies, browser history): the token goes in the hello.
        if query["token"] != nil {
            return close(connection, code: 4400, reason: "send the token in the hello message, not in the URL")
        }
        // `/live?subscribe=1&queues=a,b&resume=P` subscribes at once (clients that cannot send a
        // first message, like load generators, where no token is needed; browsers send `hello`).
        guard query["subscribe"] != nil else { return [] }
        var hello: [String: Any] = ["type": "hello"]
        hello["queues"] = query["queues"].map { $0.split(separator: ",").map(String.init) }
        hello["resume"] = query["resume"]
        guard let data = try? JSONSerialization.data(withJSONObject: hello), let text = String(data: data, encoding: .utf8) else {
            return close(connection, code: 4400, reason: "bad message: the query cannot be read as a hello")
        }
        return clientMessage(connection, text, now: now)
    }

    mutating func clientMessage(_ connection: ConnectionID, _ text: String, now: Date) -> [Effect] {
        guard var session = sessions[connection] else { return [] }
        let loopback = session.loopback
        let actions = session.subscription.received(
            text,
            canResume: { [deltaLog, flushedPosition] in deltaLog.covers($0, newest: flushedPosition) },
            admit: { [access] token in access.authorize(token, loopback: loopback, for: .live) })
        sessions[connection] = session
        return perform(actions, for: connection, now: now)
    }

    mutating func clientClosed(_ connection: ConnectionID) {
        sessions[connection] = nil
    }

    /// A send to `connection` was refused: it fell behind by more than its buffer.
    mutating func overflowed(_ connection: ConnectionID, now: Date) -> [Effect] {
        guard var session = sessions[connection], session.subscription.isLive else { return [] }
        let actions = session.subscription.overflowed(now: now)
        sessions[connection] = session
        counters.resyncs += 1
        return [.discardQueued(connection), .log(.debug, "client \(connection) fell behind; \(actions)")]
            + perform(actions, for: connection, now: now)
    }

    private mutating func perform(_ actions: [Subscription.Action], for connection: ConnectionID, now: Date) -> [Effect] {
        var effects: [Effect] = []
        for action in actions {
            switch action {
            case .sendSnapshot:
                effects += requestSnapshot(connection, now: now)
            case .resume(let from):
                effects += resume(connection, from: from, now: now)
            case .sendPong:
                effects.append(.send(connection, Self.pong))
            case .close(let code, let reason):
                effects += close(connection, code: code, reason: reason)
            }
        }
        return effects
    }

    private static let pong = OutgoingMessage("{\"type\":\"pong\"}")

    private mutating func close(_ connection: ConnectionID, code: UInt16, reason: String) -> [Effect] {
        if code == 4429 { counters.slowClientsClosed += 1 }
        sessions[connection] = nil
        return [.close(connection, code: code, reason: reason)]
    }

    /// `resumed`, then every delta after `from` up to what went out to everyone; a snapshot
    /// instead when that is more than `maxReplayDeltas`.
    private mutating func resume(_ connection: ConnectionID, from: LogPosition, now: Date) -> [Effect] {
        guard let session = sessions[connection], !session.isWallboard, deltaLog.covers(from, newest: flushedPosition) else {
            return requestSnapshot(connection, now: now)
        }
        let missed = deltaLog.after(from).prefix { $0.position <= flushedPosition }
        guard missed.count <= limits.maxReplayDeltas else { return requestSnapshot(connection, now: now) }
        counters.resumes += 1
        sessions[connection]?.awaitingSnapshot = false
        var effects: [Effect] = [.send(connection, OutgoingMessage("{\"type\":\"resumed\",\"position\":\"\(from)\"}"))]
        for frame in framed(missed, filter: session.subscription.queues, position: flushedPosition) {
            effects.append(.send(connection, frame))
        }
        if let message = completeFigures(for: session.subscription.queues, now: now) { effects.append(.send(connection, message)) }
        return effects
    }

    /// A snapshot for `connection`: a cached one (plus the deltas after it) when fresh enough,
    /// else it waits for the next snapshot job.
    private mutating func requestSnapshot(_ connection: ConnectionID, now: Date) -> [Effect] {
        guard let session = sessions[connection] else { return [] }
        let filter = session.subscription.queues
        if session.isWallboard {
            // Small (a few numbers per queue): built here, with everything applied sent first.
            let flushed = flush(now: now)
            let figures = WallboardView.figuresJSON(board, filter: filter)
            sessions[connection]?.awaitingSnapshot = false
            sessions[connection]?.lastFigures = figures
            counters.snapshotsSent += 1
            let text = WallboardView.snapshot(snapshotJob(filters: [], now: now), filter: filter, figures: figures)
            return flushed + [.send(connection, OutgoingMessage(text))]
        }
        if let cached = snapshotCache[filter], now.timeIntervalSince(cached.builtAt) <= limits.snapshotMaxAge,
           deltaLog.covers(cached.position, newest: flushedPosition),
           deltaLog.after(cached.position).count <= limits.snapshotMaxCatchUp {
            return deliver(cached, to: connection)
        }
        sessions[connection]?.awaitingSnapshot = true
        return startSnapshotJob(now: now)
    }

    private mutating func startSnapshotJob(now: Date) -> [Effect] {
        guard !snapshotJobInFlight else { return [] }
        let filters = Set(sessions.values.filter { $0.awaitingSnapshot && $0.subscription.isLive }.map { $0.subscription.queues })
        guard !filters.isEmpty else { return [] }
        // Everything applied goes out first, so the snapshot is never ahead of what the other
        // sessions were sent: the deltas after it are then exactly the next flushes.
        let flushed = flush(now: now)
        snapshotJobInFlight = true
        snapshotJobGeneration = configurationGeneration
        return flushed + [.buildSnapshots(snapshotJob(filters: Array(filters), now: now))]
    }

    /// A snapshot job finished.
    mutating func snapshotsBuilt(_ built: [SnapshotJob.Result], position: LogPosition, builtAt: Date, now: Date) -> [Effect] {
        snapshotJobInFlight = false
        counters.snapshotsBuilt += built.count
        guard snapshotJobGeneration == configurationGeneration else {
            return startSnapshotJob(now: now)    // built from the configuration before the change
        }
        var effects: [Effect] = []
        for result in built {
            snapshotCache[result.filter] = CachedSnapshot(position: position, builtAt: builtAt, message: result.message)
        }
        for (connection, session) in sessions.sorted(by: { $0.key < $1.key })
        where session.awaitingSnapshot && session.subscription.isLive {
            if let cached = snapshotCache[session.subscription.queues], cached.position == position,
               deltaLog.covers(position, newest: flushedPosition) {
                effects += deliver(cached, to: connection)
            }
        }
        // Sessions that asked meanwhile (another filter, or the log moved past the snapshot).
        return effects + startSnapshotJob(now: now)
    }

    private mutating func deliver(_ snapshot: CachedSnapshot, to connection: ConnectionID) -> [Effect] {
        guard let session = sessions[connection] else { return [] }
        sessions[connection]?.awaitingSnapshot = false
        counters.snapshotsSent += 1
        var effects: [Effect] = [.send(connection, snapshot.message)]
        let missed = deltaLog.after(snapshot.position).prefix { $0.position <= flushedPosition }
        for frame in framed(missed, filter: session.subscription.queues, position: flushedPosition) {
            effects.append(.send(connection, frame))
        }
        return effects
    }

    private func broadcast(_ message: OutgoingMessage) -> [Effect] {
        sessions.filter { $0.value.subscription.isLive && !$0.value.awaitingSnapshot }.map { .send($0.key, message) }
    }

    // MARK: Time

    mutating func tick(now: Date) -> [Effect] {
        var effects: [Effect] = []
        for (connection, var session) in sessions {
            let actions = session.subscription.tick(now: now)
            sessions[connection] = session
            if !actions.isEmpty { effects += perform(actions, for: connection, now: now) }
        }
        if now.timeIntervalSince(lastHeartbeat) >= limits.heartbeatSeconds {
            lastHeartbeat = now
            var w = JSONWriter()
            w.object { o in
                o.field("type", string: "heartbeat")
                o.field("position", string: flushedPosition.description)
                o.field("serverTime", date: now)
                o.field("database", string: databaseUp ? "up" : "down")
            }
            effects += broadcast(OutgoingMessage(w.text))
        }
        if now.timeIntervalSince(lastDepthSample) >= limits.depthSampleSeconds {
            lastDepthSample = now
            let waiting = board.waitingCounts()
            for queue in board.queues.keys {
                var samples = depth[queue] ?? []
                samples.append(DepthSample(at: now, waiting: waiting[queue] ?? 0))
                if samples.count > limits.depthSamples { samples.removeFirst(samples.count - limits.depthSamples) }
                depth[queue] = samples
            }
        }
        effects += evaluateAlerts(now: now)
        if flushScheduled, now.timeIntervalSince(lastFlushAt) * 1000 >= tickMilliseconds * 4 {
            // A lost timer must not hold deltas back.
            effects += flush(now: now)
        }
        return effects + loadFiguresIfDue(now: now)
    }

    mutating func countRequest() {
        counters.httpRequests += 1
    }

    mutating func countIngest(_ operations: Int) {
        counters.ingestOperations += operations
    }

    /// Snapshots of the board as it is now, to encode off the loop (`GET /api/board`).
    func snapshotJob(filters: [Filter], now: Date) -> SnapshotJob {
        SnapshotJob(board: board, figures: figures.current, depth: depth, databaseUp: databaseUp,
                    staleSince: databaseUp ? nil : databaseChangedAt, filters: filters, now: now, alerts: alerts.firing)
    }
}

struct DepthSample: Sendable {
    var at: Date
    var waiting: Int
}

/// Snapshots to encode off the loop, from a copy of the board (copy-on-write: the loop keeps
/// changing its own).
struct SnapshotJob: Sendable {
    struct Result: Sendable {
        var filter: LiveState.Filter
        var message: OutgoingMessage
    }

    let board: LiveBoard
    let figures: LiveFigures?
    let depth: [String: [DepthSample]]
    let databaseUp: Bool
    let staleSince: Date?
    let filters: [LiveState.Filter]
    let now: Date
    /// Firing alerts (the snapshot's `alerts`).
    var alerts: [Alert] = []

    var position: LogPosition { board.position }

    func run() -> [Result] {
        filters.map { Result(filter: $0, message: OutgoingMessage(encode($0))) }
    }

    func encode(_ filter: LiveState.Filter) -> String {
        func wants(_ queue: String?) -> Bool { Subscription.wants(filter: filter, queue: queue) }
        var w = JSONWriter(capacity: 4096 + board.interactions.count * 400)
        w.object { o in
            o.field("type", string: "snapshot")
            o.field("position", string: board.position.description)
            o.field("serverTime", date: now)
            o.field("database", string: databaseUp ? "up" : "down")
            if let staleSince { o.field("staleSince", date: staleSince) }
            o.field("alerts", raw: LiveState.alertsJSON(alerts, filter: filter))
            o.field("board") { w in
                w.object { o in
                    o.field("queues") { w in
                        w.array(board.queues.values.filter { wants($0.id) }.sorted { $0.id < $1.id }) { w, q in
                            Wire.queue(q, into: &w)
                        }
                    }
                    o.field("agents") { w in
                        let agents = board.agents.values.filter { a in filter == nil || a.queues.contains { wants($0) } }
                        w.array(agents.sorted { $0.id < $1.id }) { w, a in
                            // An agent of several queues shows only the queues of the filter.
                            var shown = a
                            if filter != nil { shown.queues = a.queues.filter { wants($0) } }
                            Wire.agent(shown, presence: a.isVoiceApplication ? nil : board.presence(of: a.id), into: &w)
                        }
                    }
                    o.field("presenceReasons") { w in Wire.presenceReasons(board.presenceReasons, into: &w) }
                    o.field("figures") { w in
                        guard let figures else { w.raw("null"); return }
                        FiguresFeed.object(figures, queues: board.queueIDs(for: filter), agents: board.agentIDs(for: filter), into: &w)
                    }
                    o.field("interactions") { w in
                        let live = board.interactions.values.filter { wants($0.queue) }.sorted { $0.id < $1.id }
                        w.array(live) { w, i in
                            let hide = i.transfer.map { !board.seesTarget(of: $0, filter: filter) } ?? false
                            Wire.interaction(i, hidingTransferTarget: hide, into: &w)
                        }
                    }
                    o.field("depth") { Self.depth(depth, filter: filter, into: &$0) }
                }
            }
        }
        return w.text
    }

    /// `{"queue": [[time, waiting], ...], ...}` of the queues `filter` takes.
    static func depth(_ depth: [String: [DepthSample]], filter: LiveState.Filter, into w: inout JSONWriter) {
        w.object { o in
            for (queue, samples) in depth.sorted(by: { $0.key < $1.key }) where Subscription.wants(filter: filter, queue: queue) {
                o.field(queue) { w in
                    w.array(samples) { w, s in
                        w.raw("[")
                        w.date(s.at)
                        w.raw(",\(s.waiting)]")
                    }
                }
            }
        }
    }
}
