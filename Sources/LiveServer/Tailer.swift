import Foundation
import InteractionModel
import InteractionStore
import Logging
import Synchronization

/// Reconnection delays: doubling from `initial` to `maximum`, with jitter, reset on success.
struct Backoff: Sendable {
    let initial: TimeInterval
    let maximum: TimeInterval
    private(set) var attempt = 0

    init(initial: TimeInterval = 0.25, maximum: TimeInterval = 10) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt; `jitter` in 0..<1 spreads reconnecting servers.
    mutating func next(jitter: Double) -> TimeInterval {
        let base = min(maximum, initial * pow(2, Double(min(attempt, 20))))
        attempt += 1
        return base * (0.75 + 0.5 * jitter)
    }

    mutating func succeeded() { attempt = 0 }
}

/// Follows the transition log in commit order on its own thread and connection.
///
/// NOTIFY `sightline_log` is the wake-up: the thread sleeps in poll(2) on the libpq socket and
/// reads `readLog(after: cursor)` when woken. The read takes only rows of finished
/// transactions, so a row held back by an older transaction still running is read when that
/// one ends: its own NOTIFY wakes us, and a slow fallback poll covers older transactions that
/// write no log rows. NOTIFY `sightline_config` (queues or agents changed) and `sightline_tokens` are passed on. The log
/// query never runs on the event-loop thread.
///
/// This is the handle other threads hold: a stop flag, the count of rows handed over but not
/// yet applied (the loop lowers it; the tailer waits while it is high, so a slow loop makes the
/// database hold rows rather than this process), and the signal that the thread has ended.
final class Tailer: Sendable {
    enum Event: Sendable {
        case rows([LogRow])
        case configurationChanged
        /// NOTIFY sightline_tokens: a token was created, revoked or changed.
        case tokensChanged
        /// The tailer is polling and the connection is fine (at most once a second while idle).
        case alive
        case databaseUp
        case databaseDown(String)
    }

    /// Rows handed over and not yet applied beyond which the tailer waits.
    static let maxBacklog = 20_000
    private let stopped = Atomic<Bool>(false)
    private let backlog = Atomic<Int>(0)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)

    init() {}

    /// Starts the thread. `deliver` runs on it and must hand over to the loop quickly.
    func start(conninfo: String, from cursor: LogPosition, logger: Logger,
               deliver: @escaping @Sendable (Event) -> Void) {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        let thread = Thread { [self] in
            var loop = TailerLoop(conninfo: conninfo, cursor: cursor, logger: logger, handle: self, deliver: deliver)
            loop.run()
            finished.signal()
        }
        thread.name = "sightline-tailer"
        thread.start()
    }

    /// The loop applied `count` rows.
    func applied(_ count: Int) {
        backlog.subtract(count, ordering: .relaxed)
    }

    fileprivate func handedOver(_ count: Int) {
        backlog.add(count, ordering: .relaxed)
    }

    fileprivate var pending: Int { backlog.load(ordering: .relaxed) }

    var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Asks the thread to end and waits for it (at most `timeout`); true when it ended.
    @discardableResult
    func stopAndJoin(timeout: TimeInterval = 5) -> Bool {
        stopped.store(true, ordering: .relaxed)
        guard started.load(ordering: .relaxed) else { return true }
        return finished.wait(timeout: .now() + timeout) == .success
    }
}

/// The tailer thread's own state; lives and dies on that thread.
private struct TailerLoop {
    let conninfo: String
    var cursor: LogPosition
    let logger: Logger
    let handle: Tailer
    let deliver: @Sendable (Tailer.Event) -> Void
    let batchSize = 2000

    mutating func run() {
        var backoff = Backoff()
        var up = true
        while !handle.isStopped {
            do {
                let store = try InteractionStore(conninfo: conninfo)
                try store.connection.query("listen sightline_log")
                try store.connection.query("listen sightline_config")
                try store.connection.query("listen sightline_tokens")
                if !up { logger.notice("database connection back; catching up from \(cursor)") }
                up = true
                backoff.succeeded()
                deliver(.databaseUp)
                try follow(store)
            } catch {
                if handle.isStopped { break }
                let delay = backoff.next(jitter: Double.random(in: 0..<1))
                if up {
                    logger.warning("database connection lost: \(error); serving the last board, reconnecting")
                    deliver(.databaseDown("\(error)"))
                }
                up = false
                logger.debug("reconnecting in \(String(format: "%.2f", delay)) s")
                let deadline = Date(timeIntervalSinceNow: delay)
                while !handle.isStopped, Date() < deadline { usleep(50_000) }
            }
        }
    }

    /// Reads until stopped; throws when the connection breaks.
    private mutating func follow(_ store: InteractionStore) throws {
        var quietReads = 0
        var lastAlive = Date()
        while !handle.isStopped {
            // The loop is behind: let PostgreSQL hold the rows until it catches up.
            while handle.pending > Tailer.maxBacklog, !handle.isStopped { usleep(2_000) }
            var rows = try store.readLog(after: cursor, limit: batchSize)
            while !rows.isEmpty, !handle.isStopped {
                cursor = rows[rows.count - 1].position
                handle.handedOver(rows.count)
                deliver(.rows(rows))
                quietReads = 0
                while handle.pending > Tailer.maxBacklog, !handle.isStopped { usleep(2_000) }
                rows = rows.count == batchSize ? try store.readLog(after: cursor, limit: batchSize) : []
            }
            // Wait for a NOTIFY; after one, rows of a transaction held back behind an older one
            // appear a little later: look again soon, then less often.
            let timeout: Int32 = quietReads < 3 ? 20 : quietReads < 10 ? 200 : 1000
            var pfd = pollfd(fd: store.connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, timeout)
            if ready < 0, errno != EINTR { throw StoreError.unavailable("poll failed: errno \(errno)") }
            let notes = try store.connection.notifications()
            if pfd.revents & Int16(POLLHUP | POLLERR) != 0, !store.connection.isHealthy {
                throw StoreError.unavailable("connection closed")
            }
            if notes.contains(where: { $0.channel == "sightline_config" }) { deliver(.configurationChanged) }
            if notes.contains(where: { $0.channel == "sightline_tokens" }) { deliver(.tokensChanged) }
            if notes.isEmpty { quietReads += 1 } else { quietReads = 0 }
            if Date().timeIntervalSince(lastAlive) >= 1 {
                lastAlive = Date()
                deliver(.alive)
            }
        }
    }
}
