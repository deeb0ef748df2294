import Foundation
import InteractionModel
import InteractionStore
import Simulation
import XCTest

final class ConcurrencyTests: StoreTestCase {
    /// 16 writers drive 1,000 interactions and change the agent's presence, some in
    /// multi-statement transactions that commit late, while a reader tails the log (transitions
    /// and presence changes, one stream). The final states agree with the log, each interaction's
    /// and the agent's log order is its commit (version) order, and the tail saw every row
    /// exactly once, in stream order.
    func testConcurrentWritersAndAGapFreeTail() throws {
        let url = try XCTUnwrap(Self.url)
        let writers = 16
        let perWriter = 1000 / writers + 1
        let start = try store.readLog(after: .start, limit: 1).first.map { _ in try lastPosition() } ?? .start
        let pool = Locked<[Int64]>([])
        let errors = Locked<[String]>([])
        let done = Locked(false)
        let tailed = Locked<[LogRow]>([])
        let toggled = Locked(0)
        let (queue, ann) = (self.queue, self.ann)

        let tailer = Thread {
            do {
                let reader = try InteractionStore(conninfo: url)
                var cursor = start
                var quietRounds = 0
                while quietRounds < 20 {
                    let rows = try reader.readLog(after: cursor, limit: 300)
                    if let last = rows.last { cursor = last.position }
                    tailed.withLock { $0.append(contentsOf: rows) }
                    if rows.isEmpty && done.withLock({ $0 }) { quietRounds += 1 } else { quietRounds = 0 }
                    usleep(2000)
                }
            } catch {
                errors.withLock { $0.append("tailer: \(error)") }
            }
        }
        tailer.start()

        let group = DispatchGroup()
        for w in 0..<writers {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let s = try InteractionStore(conninfo: url)
                    var mine: [Int64] = []
                    for n in 0..<perWriter where w * perWriter + n < 1000 {
                        let id = try s.createInteraction(callID: "conc-\(w)-\(n)-\(UUID().uuidString.prefix(6))")
                        try s.transition(id, to: .queued, queue: queue)
                        try s.transition(id, to: .deliveryPending, agent: ann)
                        try s.transition(id, to: .delivered, agent: ann)
                        mine.append(id)
                    }
                    pool.withLock { $0.append(contentsOf: mine) }
                    var random = SeededRandom(seed: UInt64(w + 1))
                    for _ in 0..<60 {
                        let all = pool.withLock { $0 }
                        let x = all[Int(random.next() % UInt64(all.count))]
                        let y = all[Int(random.next() % UInt64(all.count))]
                        if random.chance(0.5) {
                            // Two interactions in one transaction that waits in the middle.
                            do {
                                try s.transaction {
                                    // The agent's row lock first (as every writer that takes
                                    // both should), then the interactions'.
                                    // Refused (SL023) when the agent is already so: the whole transaction goes.
                                    if random.chance(0.3) {
                                        if random.chance(0.5) {
                                            try s.setPresence(agent: ann, .ready)
                                        } else {
                                            try s.setPresence(agent: ann, .notReady, reason: "break")
                                        }
                                    }
                                    try Self.toggleHold(s, x, ann)
                                    usleep(UInt32.random(in: 500...3000))
                                    try Self.toggleHold(s, y, ann)
                                }
                            } catch StoreError.refused {}
                        } else {
                            do { try Self.toggleHold(s, x, ann) } catch StoreError.refused {}
                        }
                    }
                    // Wrap up only when nobody toggles any more.
                    toggled.withLock { $0 += 1 }
                    while toggled.withLock({ $0 }) < writers { usleep(1000) }
                    for id in mine {
                        let state = try s.connection.query("select state::text from sightline.interactions where id = $1",
                                                           [String(id)]).string(0, 0)
                        if state == "held" { try s.transition(id, to: .delivered, agent: ann) }
                        try s.transition(id, to: .afterCallWork)
                        try s.transition(id, to: .completed)
                    }
                } catch {
                    toggled.withLock { $0 += writers }
                    errors.withLock { $0.append("writer \(w): \(error)") }
                }
            }.start()
        }
        group.wait()
        done.withLock { $0 = true }
        while !tailer.isFinished { usleep(10_000) }
        XCTAssertEqual(errors.withLock { $0 }, [])

        let ids = pool.withLock { $0 }
        XCTAssertEqual(ids.count, 1000)
        let idList = "{" + ids.map(String.init).joined(separator: ",") + "}"
        // Final states agree with the log.
        let mismatch = try store.connection.query("""
            select count(*) from sightline.interactions i
             where i.id = any($1::bigint[])
               and i.state <> (select to_state from sightline.transitions t where t.interaction_id = i.id
                                order by t.order_tx desc, t.id desc limit 1)
            """, [idList])
        XCTAssertEqual(mismatch.int(0, 0), 0)
        let notDone = try store.connection.query(
            "select count(*) from sightline.interactions where id = any($1::bigint[]) and state <> 'completed'", [idList])
        XCTAssertEqual(notDone.int(0, 0), 0)

        // The tail: every row after the start exactly once, in (order_tx, id) order.
        let full = try store.connection.query("""
            select order_tx::text, id from (select order_tx, id from sightline.transitions
                                            union all select order_tx, id from sightline.presence_log) t
             where (t.order_tx, t.id) > ($1::xid8, $2::bigint) order by t.order_tx, t.id
            """, [String(start.orderTx), String(start.id)])
        let expected = (0..<full.rowCount).map { LogPosition(orderTx: full.uint64($0, 0)!, id: full.int64($0, 1)!) }
        let got = tailed.withLock { $0 }
        XCTAssertEqual(got.count, expected.count, "rows tailed")
        XCTAssertEqual(got.map(\.position), expected, "the tail is the log, in stream order, without gap or duplicate")
        XCTAssertEqual(got.filter { if case .unreadable = $0 { return true } else { return false } }, [],
                       "every row written by the functions reads")
        let presenceVersions = got.compactMap { row -> Int? in
            if case .presence(let p) = row, p.agent == ann { return p.version } else { return nil }
        }
        XCTAssertFalse(presenceVersions.isEmpty, "presence changes were written and tailed")
        XCTAssertEqual(presenceVersions, presenceVersions.sorted(), "the agent's presence changes in version order")
        XCTAssertEqual(Set(presenceVersions).count, presenceVersions.count, "no presence change twice")
        // Per interaction, the stream gives versions 1, 2, 3, ... in order.
        var lastVersion: [Int64: Int] = [:]
        var outOfOrder = 0
        for t in got.compactMap(\.transition) where ids.contains(t.interactionID) || lastVersion[t.interactionID] != nil {
            if t.version != (lastVersion[t.interactionID] ?? 0) + 1 { outOfOrder += 1 }
            lastVersion[t.interactionID] = t.version
        }
        XCTAssertEqual(outOfOrder, 0, "per-interaction order in the stream is commit order")
    }

    static func toggleHold(_ s: InteractionStore, _ id: Int64, _ agent: String) throws {
        let state = try s.connection.query("select state::text from sightline.interactions where id = $1", [String(id)]).string(0, 0)
        try s.transition(id, to: state == "held" ? .delivered : .held, agent: agent)
    }
}

/// A value behind a lock, for test threads.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
