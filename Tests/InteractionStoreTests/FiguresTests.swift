import Foundation
import InteractionModel
import InteractionStore
import XCTest

/// The figures (sql/012_figures.sql), the presence rules (sql/010_presence.sql) and the seed's
/// transfer rules (sql/011_transfers_and_facts.sql), against the real store. Times are written
/// explicitly in an interval two days back, so the numbers are exact.
final class FiguresTests: StoreTestCase {
    /// The start of a 15-minute interval two days ago.
    lazy var base: Date = {
        let t = Date().addingTimeInterval(-2 * 86400).timeIntervalSince1970
        return Date(timeIntervalSince1970: (t / 900).rounded(.down) * 900)
    }()

    func at(_ seconds: Double) -> Date { base.addingTimeInterval(seconds) }

    /// The figures of the test's queue (or an agent) for the interval at `base`, as JSON.
    func figures(_ scope: FigureRow.Scope = .queue, _ id: String? = nil, granularity: FigureGranularity = .interval,
                 file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let id = id ?? queue
        let history = try store.figures(from: base, to: base.addingTimeInterval(1), granularity: granularity,
                                        queues: scope == .queue ? [id] : [], agents: scope == .agent ? [id] : [])
        let row = try XCTUnwrap(history.rows.first { $0.scope == scope && $0.id == id }, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(row.json.utf8)) as? [String: Any], file: file, line: line)
    }

    /// A caller who waits `wait` seconds from `start` and is answered by `agent`, talks, wraps up.
    @discardableResult
    func answered(at start: Double, wait: Double, agent: String, talk: Double = 30, acw: Double = 10) throws -> Int64 {
        let id = try store.createInteraction(callID: "fig-\(UUID().uuidString.prefix(8))", at: at(start))
        try store.transition(id, to: .queued, queue: queue, at: at(start))
        try store.transition(id, to: .deliveryPending, agent: agent, at: at(start + wait - 1))
        try store.transition(id, to: .delivered, at: at(start + wait))
        try store.transition(id, to: .afterCallWork, at: at(start + wait + talk))
        try store.transition(id, to: .completed, at: at(start + wait + talk + acw))
        return id
    }

    @discardableResult
    func abandoned(at start: Double, after wait: Double) throws -> Int64 {
        let id = try store.createInteraction(callID: "fig-\(UUID().uuidString.prefix(8))", at: at(start))
        try store.transition(id, to: .queued, queue: queue, at: at(start))
        try store.transition(id, to: .completed, at: at(start + wait))
        return id
    }

    /// The README's worked example: 10 answered (8 within 20 s), 3 abandoned after 3, 40 and
    /// 65 s; the three service-level formulas and the abandon rate.
    func testServiceLevelWorkedExample() throws {
        for n in 0..<10 {
            try answered(at: Double(n * 20), wait: n < 8 ? 15 : 25, agent: n % 2 == 0 ? ann : bob)
        }
        try abandoned(at: 300, after: 3)
        try abandoned(at: 310, after: 40)
        try abandoned(at: 320, after: 65)
        var f = try figures()
        XCTAssertEqual(f["offered"] as? Int, 13)
        XCTAssertEqual(f["answered"] as? Int, 10)
        XCTAssertEqual(f["answeredWithinServiceLevel"] as? Int, 8)
        XCTAssertEqual(f["abandoned"] as? Int, 3)
        XCTAssertEqual(f["shortAbandoned"] as? Int, 1)
        XCTAssertEqual(try XCTUnwrap(f["serviceLevelPercent"] as? Double), 100.0 * 8 / 12, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["abandonPercent"] as? Double), 100.0 * 2 / 12, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["asaSeconds"] as? Double), (8 * 15 + 2 * 25) / 10.0, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["longestWaitSeconds"] as? Double), 65, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["ahtSeconds"] as? Double), 40, accuracy: 0.001)

        try store.upsertQueue(QueueConfig(id: queue, name: "Test", serviceLevelSeconds: 20, excludeShortAbandons: false))
        f = try figures()
        XCTAssertEqual(try XCTUnwrap(f["serviceLevelPercent"] as? Double), 100.0 * 8 / 13, accuracy: 0.001)
        try store.upsertQueue(QueueConfig(id: queue, name: "Test", serviceLevelSeconds: 20, abandonsInDenominator: false))
        f = try figures()
        XCTAssertEqual(try XCTUnwrap(f["serviceLevelPercent"] as? Double), 80, accuracy: 0.001)
        // The threshold is the queue's: at 10 s nobody is within it.
        try store.upsertQueue(QueueConfig(id: queue, name: "Test", serviceLevelSeconds: 10))
        XCTAssertEqual(try figures()["answeredWithinServiceLevel"] as? Int, 0)
    }

    /// Presence times, handling while ready and occupancy within one interval; not-ready time by
    /// reason; logged-out time counts nowhere.
    func testPresenceTimesAndOccupancy() throws {
        try store.setPresence(agent: ann, .ready, at: at(0))
        try answered(at: 60, wait: 10, agent: ann, talk: 120, acw: 30)    // handling 70 ... 220
        try store.setPresence(agent: ann, .notReady, reason: "break", at: at(300))
        try store.setPresence(agent: ann, .notReady, reason: "lunch", at: at(400))
        try store.setPresence(agent: ann, .ready, at: at(600))
        try store.setPresence(agent: ann, .loggedOut, at: at(800))
        let f = try figures(.agent, ann)
        XCTAssertEqual(try XCTUnwrap(f["loggedInSeconds"] as? Double), 800, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["readySeconds"] as? Double), 500, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["notReadySeconds"] as? Double), 300, accuracy: 0.001)
        let reasons = try XCTUnwrap(f["notReadyReasons"] as? [String: Double])
        XCTAssertEqual(reasons["break"] ?? 0, 100, accuracy: 0.001)
        XCTAssertEqual(reasons["lunch"] ?? 0, 200, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["interactingReadySeconds"] as? Double), 150, accuracy: 0.001)
        XCTAssertEqual(try XCTUnwrap(f["occupancyPercent"] as? Double), 30, accuracy: 0.001)
        XCTAssertEqual(f["answered"] as? Int, 1)
        XCTAssertEqual(f["handled"] as? Int, 1)
        // Bob never logged in: no time at all, and no occupancy (not a division by zero).
        let b = try figures(.agent, bob)
        XCTAssertEqual(b["loggedInSeconds"] as? Double, 0)
        XCTAssertTrue(b["occupancyPercent"] is NSNull)
    }

    /// Each presence refusal has its SQLSTATE and writes nothing.
    func testEveryPresenceRefusalHasItsSQLStateAndWritesNothing() throws {
        func count() throws -> String {
            let r = try sql("""
                select (select count(*) from sightline.presence_log)::text || '/' ||
                       coalesce((select row_to_json(p)::text from sightline.agent_presence p where agent_id = $1), 'none')
                """, [ann])
            return r.string(0, 0) ?? ""
        }
        func refused(_ refusal: Refusal, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) throws {
            let before = try count()
            XCTAssertThrowsError(try body(), file: file, line: line) { error in
                guard case .refused(let got, _, _) = error as? StoreError else {
                    return XCTFail("expected \(refusal), got \(error)", file: file, line: line)
                }
                XCTAssertEqual(got, refusal, file: file, line: line)
            }
            XCTAssertEqual(try count(), before, "nothing written", file: file, line: line)
        }
        try refused(.unknownAgent) { try store.setPresence(agent: "nobody-\(ann)", .ready) }
        try refused(.unknownPresence) { try store.setPresence(agent: ann, state: "on_fire") }
        try refused(.presenceReason) { try store.setPresence(agent: ann, .notReady) }
        try refused(.presenceReason) { try store.setPresence(agent: ann, .ready, reason: "break") }
        try refused(.unknownPresenceReason) { try store.setPresence(agent: ann, .notReady, reason: "nap") }
        try refused(.presenceUnchanged) { try store.setPresence(agent: ann, .loggedOut) }
        try refused(.noPresence) { try store.setPresence(agent: ivr, .ready) }
        try refused(.timeInFuture) { try store.setPresence(agent: ann, .ready, at: Date().addingTimeInterval(365 * 86400)) }
        try store.setPresence(agent: ann, .ready, at: at(100))
        try refused(.presenceUnchanged) { try store.setPresence(agent: ann, .ready) }
        try refused(.timeBeforeLastTransition) { try store.setPresence(agent: ann, .loggedOut, at: at(50)) }
        let change = try store.setPresence(agent: ann, .notReady, reason: "training", at: at(200))
        XCTAssertEqual(change.from, .ready)
        XCTAssertEqual(change.to, .notReady)
        XCTAssertEqual(change.version, 2)
        XCTAssertEqual(try store.presence()[ann], AgentPresence(state: .notReady, reason: "training", since: at(200),
                                                                 loggedInSince: at(100), version: 2))
    }

    /// Seed rule: a transferred leg never queued before the transfer has no wait (it had -2.022 s
    /// with talk 2.022 s: the transfer's queued step was taken for its first queueing).
    func testATransferredLegThatNeverQueuedHasNoNegativeWait() throws {
        let original = try store.createInteraction(callID: "direct-\(ann)", at: at(0))
        try store.transition(original, to: .deliveryPending, agent: ann, at: at(1))
        try store.transition(original, to: .delivered, at: at(2))
        let leg = try store.beginTransfer(original, kind: "agent", target: bob, at: at(4.022))
        try store.transition(leg, to: .deliveryPending, agent: bob, at: at(5))
        try store.transition(leg, to: .delivered, at: at(6))
        try store.transition(original, to: .completed, at: at(7))
        let stats = try XCTUnwrap(store.statistics(of: original))
        XCTAssertNil(stats.waitSeconds, "never waited in a queue")
        XCTAssertNil(stats.answeredWithinServiceLevel)
        XCTAssertTrue(stats.transferred)
        XCTAssertEqual(stats.talkSeconds, 2.022 + 1.978, accuracy: 0.001, "talk until the transfer completed")
    }

    /// Seed rule: a transfer to bob is accepted by bob only; a queue transfer enters its queue by
    /// itself; the original's queued row comes before the new interaction's idle row.
    func testTransfersFollowTheSeedsSteps() throws {
        let cat = "cat-\(ann)"
        try store.upsertAgent(AgentConfig(id: cat, name: "Cat", queues: [queue]))
        let original = try interaction(in: .delivered)
        let leg = try store.beginTransfer(original, kind: "agent", target: bob)
        try assertRefused(.notTransferTarget, leg) { try store.transition(leg, to: .deliveryPending, agent: cat) }
        try store.transition(leg, to: .deliveryPending, agent: bob)
        let both = try sql("""
            select interaction_id, to_state::text from (select * from sightline.transitions where interaction_id in ($1, $2)) t
             where (interaction_id = $1 and cause = 'transfer_started') or (interaction_id = $2 and version = 1)
             order by order_tx, id
            """, [String(original), String(leg)])
        XCTAssertEqual((0..<both.rowCount).map { both.string($0, 1) }, ["queued", "idle"], "step 1 (original queued), then step 2 (new idle)")

        let second = try interaction(in: .delivered)
        let queueLeg = try store.beginTransfer(second, kind: "queue", target: queue)
        XCTAssertEqual(try store.transitions(of: queueLeg).map(\.to), [.idle, .queued])
        XCTAssertEqual(try store.transitions(of: queueLeg).last?.cause, .transferQueued)
        XCTAssertEqual(try store.transitions(of: queueLeg).last?.queue, queue)
        try store.transition(queueLeg, to: .deliveryPending, agent: cat)   // any member may take it
    }

    /// Seed rule: short abandons are measured from entering the queue; a caller gone before
    /// queueing is no queue's abandon and never short, live (stored statistics) and in figures.
    func testShortAbandonsCountFromEnteringTheQueue() throws {
        // Arrived, 30 s in the voice application, queued, gone 2 s later: short.
        let a = try store.createInteraction(callID: "ab-\(ann)", at: at(0))
        try store.transition(a, to: .dataCollection, at: at(0))
        try store.transition(a, to: .queued, queue: queue, at: at(30))
        try store.transition(a, to: .completed, at: at(32))
        // Gone from the voice application after 2 s: never queued.
        let b = try store.createInteraction(callID: "ab2-\(ann)", at: at(40))
        try store.transition(b, to: .dataCollection, at: at(40))
        try store.transition(b, to: .completed, at: at(42))
        let sa = try XCTUnwrap(store.statistics(of: a))
        XCTAssertTrue(sa.shortAbandon)
        XCTAssertEqual(try XCTUnwrap(sa.waitSeconds), 2, accuracy: 0.001)
        let sb = try XCTUnwrap(store.statistics(of: b))
        XCTAssertTrue(sb.abandoned)
        XCTAssertFalse(sb.shortAbandon, "never entered a queue: not a short abandon")
        XCTAssertNil(sb.waitSeconds)
        let f = try figures()
        XCTAssertEqual(f["abandoned"] as? Int, 1)
        XCTAssertEqual(f["shortAbandoned"] as? Int, 1)
        XCTAssertEqual(f["offered"] as? Int, 1)
    }

    /// Intervals of 15 minutes and days in the contact center's zone: a day in Asia/Kathmandu
    /// (UTC+05:45) starts at 18:15 UTC; its intervals still start at whole quarters.
    func testPeriodsFollowTheTimeZone() throws {
        // In a transaction that is rolled back: other tests run with the default zone.
        try sql("begin")
        defer { _ = try? sql("rollback") }
        try sql("select sightline.set_time_zone('Asia/Kathmandu')")
        let days = try sql("select to_char(period_start at time zone 'UTC', 'HH24:MI') from sightline.periods('2026-11-24 12:00+00', '2026-11-24 13:00+00', 'day')")
        XCTAssertEqual(days.string(0, 0), "18:15")
        let intervals = try sql("select count(*), min(to_char(period_start at time zone 'UTC', 'MI')) from sightline.periods('2026-11-24 12:07+00', '2026-11-24 13:00+00', 'interval')")
        XCTAssertEqual(intervals.string(0, 0), "4")
        XCTAssertEqual(intervals.string(0, 1), "00")
        XCTAssertThrowsError(try sql("select sightline.set_time_zone('Mars/Olympus')")) { error in
            guard case .refused(.badArgument, _, _) = error as? StoreError else { return XCTFail("\(error)") }
        }
    }

    /// A queue's abandon thresholds are stored and read back; out of 1...100 or a warning above
    /// the alarm is refused (SL013) and leaves the queue as it was; null means not judged.
    func testAbandonThresholdsOfAQueue() throws {
        try store.upsertQueue(QueueConfig(id: queue, name: "Test", abandonWarningPercent: 8, abandonAlarmPercent: 15))
        var q = try XCTUnwrap(try store.queues().first { $0.id == queue })
        XCTAssertEqual(q.abandonWarningPercent, 8)
        XCTAssertEqual(q.abandonAlarmPercent, 15)
        for (warning, alarm) in [(20, 10), (0, 10), (5, 101)] {
            XCTAssertThrowsError(try store.upsertQueue(QueueConfig(id: queue, name: "Changed",
                                                                   abandonWarningPercent: warning, abandonAlarmPercent: alarm))) { error in
                guard case .refused(.badArgument, _, _) = error as? StoreError else { return XCTFail("\(error)") }
            }
        }
        q = try XCTUnwrap(try store.queues().first { $0.id == queue })
        XCTAssertEqual(q.name, "Test")
        XCTAssertEqual(q.abandonAlarmPercent, 15)
        try store.upsertQueue(QueueConfig(id: queue, name: "Test"))
        q = try XCTUnwrap(try store.queues().first { $0.id == queue })
        XCTAssertNil(q.abandonWarningPercent)
        XCTAssertNil(q.abandonAlarmPercent)
    }
}
