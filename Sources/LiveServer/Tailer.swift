import Foundation
import InteractionModel
import InteractionStore
import Logging

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
/// write no log rows. The log query never runs on the event-loop thread.
final class Tailer: @unchecked Sendable {
    enum Event: Sendable {
        case transitions([Transition])
        case databaseUp
        case databaseDown(String)
    }

    private let conninfo: String
    private let logger: Logger
    private let deliver: @Sendable (Event) -> Void
    private var cursor: LogPosition
    private let stopLock = NSLock()
    private var stopped = false
    private var thread: Thread?
    private let batchSize = 2000

    /// - Parameter deliver: called on the tailer's thread; must hand over to the loop quickly.
    init(conninfo: String, from cursor: LogPosition, logger: Logger, deliver: @escaping @Sendable (Event) -> Void) {
        self.conninfo = conninfo
        self.cursor = cursor
        self.logger = logger
        self.deliver = deliver
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "sightline-tailer"
        thread = t
        t.start()
    }

    func stop() {
        stopLock.withLock { stopped = true }
    }

    private var isStopped: Bool { stopLock.withLock { stopped } }

    private func run() {
        var backoff = Backoff()
        var up = true
        while !isStopped {
            do {
                let store = try InteractionStore(conninfo: conninfo)
                try store.connection.query("listen sightline_log")
                if !up { logger.notice("database connection back; catching up from \(cursor)") }
                up = true
                backoff.succeeded()
                deliver(.databaseUp)
                try follow(store)
            } catch {
                if isStopped { break }
                let delay = backoff.next(jitter: Double.random(in: 0..<1))
                if up {
                    logger.warning("database connection lost: \(error); serving the last board, reconnecting")
                    deliver(.databaseDown("\(error)"))
                }
                up = false
                logger.debug("reconnecting in \(String(format: "%.2f", delay)) s")
                let deadline = Date(timeIntervalSinceNow: delay)
                while !isStopped, Date() < deadline { usleep(50_000) }
            }
        }
    }

    /// Reads until stopped; throws when the connection breaks.
    private func follow(_ store: InteractionStore) throws {
        var recheck = true
        var quietReads = 0
        while !isStopped {
            if recheck {
                var rows = try store.readLog(after: cursor, limit: batchSize)
                while !rows.isEmpty {
                    cursor = rows.last!.position
                    deliver(.transitions(rows))
                    quietReads = 0
                    rows = rows.count == batchSize ? try store.readLog(after: cursor, limit: batchSize) : []
                }
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
            if notes.isEmpty { quietReads += 1 } else { quietReads = 0 }
            // Every wake-up reads (an indexed range scan, also how a dead connection is noticed).
            recheck = true
        }
    }
}
