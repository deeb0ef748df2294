import AlertDelivery
import Dispatch
import Foundation
import InteractionModel
import InteractionStore
import LWS
import Logging

/// The executor of the live server: feeds what happens (tailed rows, client messages, ticks,
/// finished background work) into `LiveState` and performs the effects it returns, on the loop
/// thread. The only other threads are the tailer, the database pools and the snapshot encoder;
/// they reach the loop through the server's mailbox with `Sendable` values, and the service
/// itself crosses only as a `LoopBound`.
///
/// Lifetime: one per `sightline serve`: `init` (loads the board), `attach(to:)`, the server runs,
/// then `shutdown()` from the server's `beforeDestroy`.
public final class LiveService: LWSServerDelegate {
    public struct Configuration: Sendable {
        /// SHA-256 (hex) of the bootstrap token, an admin token that is not stored (given by an
        /// environment variable or a file, never on the command line).
        public var bootstrapTokenHash: String?
        /// Seconds between rereads of the tokens (expiries; NOTIFY brings other changes at once).
        public var tokenReloadSeconds: TimeInterval = 1
        /// Write operations a second per token, and how many may come at once (429 beyond).
        public var ingestRate: Double = 200
        public var ingestBurst: Double = 400
        /// Deltas kept for resuming clients.
        public var resumeCapacity = 100_000
        public var heartbeatSeconds: TimeInterval = 5
        /// The fan-out tick in milliseconds (see LiveState).
        public var batchMilliseconds = 10
        public var databaseWorkers = 2
        /// Seconds a statement of the HTTP API may run before PostgreSQL cancels it (503).
        public var apiStatementTimeoutSeconds: Double = 10
        public var openAPIDocument: String = "{}"
        /// Alert rules and receivers (`--alerts FILE`); the defaults without one.
        public var alerts = AlertConfiguration()
        /// The board's address, for links in alerts (`generatorURL`).
        public var boardURL = "http://127.0.0.1:8080/"

        public init() {}
    }

    let configuration: Configuration
    let logger: Logger
    private let conninfo: String
    let pool: DatabasePool
    /// Its own connection for the live figures, so their reads (up to a day of the log) never
    /// hold up the API's workers.
    private let figuresPool: DatabasePool
    /// The alert rules' window figures, on a connection of their own: a slow read must not hold
    /// up the API's workers.
    private let alertFiguresPool: DatabasePool
    private let tailer = Tailer()
    let snapshotQueue = DispatchQueue(label: "sightline-snapshots")
    private(set) var server: LWSServer?
    var state: LiveState
    let startedAt = Date()
    let metrics = ServerMetrics()
    let alertDispatcher: AlertDispatcher
    /// The last read of the live figures failed (loop thread only).
    var figuresFailing = false
    private var lastTokenReload = Date()
    /// Writes per token (loop thread only).
    var rateLimiter: RateLimiter
    private var tokenReloadInFlight = false

    /// Loads the board from the store (on the calling thread) and prepares the service.
    public init(conninfo: String, configuration: Configuration, logger: Logger) throws {
        let limits = try LiveState.Limits(resumeCapacity: configuration.resumeCapacity,
                                          heartbeatSeconds: configuration.heartbeatSeconds,
                                          batchMilliseconds: configuration.batchMilliseconds)
        self.conninfo = conninfo
        self.configuration = configuration
        self.logger = logger
        rateLimiter = RateLimiter(rate: configuration.ingestRate, burst: configuration.ingestBurst)
        let store = try InteractionStore(conninfo: conninfo)
        let (board, skipped) = try store.loadBoard()
        let stored = try store.tokens()
        let access = TokenTable(stored, bootstrapHash: configuration.bootstrapTokenHash)
        state = LiveState(board: board, limits: limits, access: access, now: Date(), alerts: configuration.alerts)
        let firing = try Outbox(connection: store.connection).activeAlerts()
        state.restoreAlerts(firing)
        if !firing.isEmpty { logger.info("\(firing.count) alerts were firing when the server stopped; they go on with the same ids") }
        alertDispatcher = AlertDispatcher(conninfo: conninfo, configuration: configuration.alerts, boardURL: configuration.boardURL,
                                          firing: firing, registry: metrics.registry, logger: logger)
        pool = DatabasePool(conninfo: conninfo, size: configuration.databaseWorkers,
                            statementTimeoutMilliseconds: Int(configuration.apiStatementTimeoutSeconds * 1000), logger: logger)
        figuresPool = DatabasePool(conninfo: conninfo, size: 1, maxPending: 2, logger: logger)
        alertFiguresPool = DatabasePool(conninfo: conninfo, size: 1, maxPending: 1, logger: logger)
        logger.info("board loaded: \(board.interactions.count) live interactions, \(board.queues.count) queues, \(board.agents.count) agents; tailing from \(board.position)")
        if access.isOpen {
            logger.notice("no tokens configured: serving only clients on this machine (loopback); create one with: sightline token create --name NAME --role ROLE")
        } else {
            logger.info("tokens: \(stored.filter { $0.status == .active }.count) active\(access.bootstrapHash != nil ? ", and the bootstrap token" : "")")
        }
        if !skipped.isEmpty {
            _ = state.rowsArrived(skipped, now: Date())
            logger.warning("\(skipped.count) log rows of live interactions could not be read and were skipped; see /healthz")
        }
    }

    /// Becomes `server`'s delegate and starts tailing the log into its loop. Call before `run()`.
    public func attach(to server: LWSServer) {
        self.server = server
        server.delegate = self
        let mailbox = server.mailbox
        let bound = LoopBound(self, server: server)
        alertDispatcher.start()
        tailer.start(conninfo: conninfo, from: state.board.position, logger: logger) { event in
            mailbox.post { bound.value.tailerEvent(event) }
        }
    }

    /// Stops and joins the tailer, then lets the pool and the snapshot encoder finish what they
    /// run. Call after the loop ended (the server's `beforeDestroy`).
    public func shutdown() {
        // The alert thread saves what was decided while the rest stops.
        alertDispatcher.requestStop()
        if !tailer.stopAndJoin() { logger.warning("the log tailer did not stop within 5 s") }
        if !pool.drain() { logger.warning("database work still running after 5 s; stopping without it") }
        if !figuresPool.drain() { logger.warning("a read of the live figures still running after 5 s; stopping without it") }
        // A read-only query: stopping without it loses nothing.
        _ = alertFiguresPool.drain(timeout: 0.5)
        if !alertDispatcher.join(timeout: 2) { logger.warning("alert decisions were still being written to the outbox after 2 s; those not yet written are lost (the outbox keeps the rest)") }
        snapshotQueue.sync {}
    }

    // MARK: Performing effects

    func perform(_ effects: [LiveState.Effect]) {
        guard let server, !effects.isEmpty else { return }
        // A refused send is handled after the whole list: what the state decides then (a
        // snapshot, a flush of newer deltas) must reach every client after what this list
        // queues, never before it.
        var overflowed: [ConnectionID] = []
        var skip = Set<ConnectionID>()
        for effect in effects {
            switch effect {
            case .send(let connection, let message):
                guard !skip.contains(connection) else { continue }
                if !server.send(connection, message) {
                    skip.insert(connection)
                    overflowed.append(connection)
                }
            case .discardQueued(let connection):
                server.discardQueued(connection)
            case .close(let connection, let code, let reason):
                server.close(connection, code: code, reason: reason)
            case .buildSnapshots(let job):
                let mailbox = server.mailbox
                let bound = LoopBound(self, server: server)
                snapshotQueue.async {
                    let results = job.run()
                    mailbox.post {
                        let service = bound.value
                        service.perform(service.state.snapshotsBuilt(results, position: job.position, builtAt: job.now, now: Date()))
                    }
                }
            case .reloadConfiguration:
                let mailbox = server.mailbox
                let bound = LoopBound(self, server: server)
                let accepted = pool.submit({ store in
                    try ConfigurationSnapshot(queues: store.queues(), agents: store.agents(), presenceReasons: store.presenceReasons())
                }) { result in
                    mailbox.post {
                        let service = bound.value
                        if case .failure(let error) = result { service.logger.warning("cannot read queues and agents: \(error)") }
                        let loaded = try? result.get()
                        service.perform(service.state.configurationLoaded(loaded.map { ($0.queues, $0.agents) },
                                                                          reasons: loaded?.presenceReasons, now: Date()))
                    }
                }
                if !accepted { perform(state.configurationLoaded(nil, now: Date())) }
            case .alertsDecided(let events):
                alertDispatcher.submit(events)
            case .loadAlertFigures(let lengths):
                let mailbox = server.mailbox
                let bound = LoopBound(self, server: server)
                let accepted = alertFiguresPool.submit({ store in
                    Dictionary(uniqueKeysWithValues: try lengths.map { ($0, try store.alertWindowFigures(seconds: $0)) })
                }) { result in
                    mailbox.post {
                        let service = bound.value
                        if case .failure(let error) = result { service.logger.warning("cannot read the alert window figures: \(error)") }
                        service.state.alertFiguresLoaded(try? result.get())
                    }
                }
                if !accepted { state.alertFiguresLoaded(nil) }
            case .loadFigures:
                let mailbox = server.mailbox
                let bound = LoopBound(self, server: server)
                let started = Date()
                let accepted = figuresPool.submit({ store in try store.liveFigures() }) { result in
                    mailbox.post {
                        let service = bound.value
                        // Said once per outage, not once a second.
                        if case .failure(let error) = result, !service.figuresFailing {
                            service.logger.warning("cannot read the live figures (retrying every second, said once): \(error)")
                        }
                        service.figuresFailing = (try? result.get()) == nil
                        service.perform(service.state.figuresLoaded(try? result.get(), took: Date().timeIntervalSince(started), now: Date()))
                    }
                }
                if !accepted { perform(state.figuresLoaded(nil, now: Date())) }
            case .scheduleFlush(let milliseconds):
                server.wake(afterMilliseconds: milliseconds)
            case .log(let level, let message):
                switch level {
                case .debug: logger.debug("\(message)")
                case .info: logger.info("\(message)")
                case .warning: logger.warning("\(message)")
                }
            }
        }
        for connection in overflowed {
            perform(state.overflowed(connection, now: Date()))
        }
    }

    private func tailerEvent(_ event: Tailer.Event) {
        let now = Date()
        switch event {
        case .rows(let rows):
            if let server { state.clientsBacklogged(server.backloggedConnectionCount) }
            perform(state.rowsArrived(rows, now: now))
            metrics.rowsApplied(rows, now: now)
            tailer.applied(rows.count)
        case .configurationChanged:
            perform(state.reloadConfiguration())
        case .tokensChanged:
            reloadTokens()

        case .alive:
            state.tailerAlive(now: now)
        case .databaseUp:
            perform(state.databaseChanged(up: true, now: now))
        case .databaseDown:
            perform(state.databaseChanged(up: false, now: now))
        }
    }

    // MARK: LWSServerDelegate

    public func server(_ server: LWSServer, handle event: LWSServer.Event) {
        let now = Date()
        switch event {
        case .request(let request):
            state.countRequest()
            do {
                try route(request, server: server)
            } catch {
                server.respond(request.id, APIError(error).response)
            }
        case .opened(let connection, let upgrade):
            perform(state.clientOpened(connection, query: upgrade.query, loopback: isLoopback(upgrade.peer), now: now))
        case .message(let connection, let text):
            perform(state.clientMessage(connection, text, now: now))
        case .closed(let connection):
            state.clientClosed(connection)
        case .tick:
            perform(state.tick(now: now))
            if now.timeIntervalSince(lastTokenReload) >= configuration.tokenReloadSeconds { reloadTokens() }
        case .timer:
            state.clientsBacklogged(server.backloggedConnectionCount)
            perform(state.flush(now: now))
        }
    }

    public func server(_ server: LWSServer, shouldAccept head: HTTPRequestHead) -> HTTPResponse? {
        do {
            _ = try principal(head)
            try checkContentType(head)
            return nil
        } catch {
            return APIError(error).response
        }
    }

    /// Rereads the tokens off the loop (at most one read at a time).
    private func reloadTokens() {
        guard let server, !tokenReloadInFlight else { return }
        tokenReloadInFlight = true
        lastTokenReload = Date()
        let mailbox = server.mailbox
        let bound = LoopBound(self, server: server)
        let accepted = pool.submit({ store in try store.tokens() }) { result in
            mailbox.post {
                let service = bound.value
                service.tokenReloadInFlight = false
                switch result {
                case .success(let stored):
                    let table = TokenTable(stored, bootstrapHash: service.configuration.bootstrapTokenHash)
                    service.perform(service.state.tokensLoaded(table, now: Date()))
                case .failure(let error):
                    service.logger.warning("cannot read the tokens (the ones known are kept): \(error)")
                }
            }
        }
        if !accepted { tokenReloadInFlight = false }
    }
}

/// Queues and agents read together, to hand from a database worker to the loop.
struct ConfigurationSnapshot: Sendable {
    var queues: [QueueConfig]
    var agents: [AgentConfig]
    var presenceReasons: [PresenceReason]
}
