import Foundation
import InteractionModel
import InteractionStore
import XCTest

/// Writer times (sql/003), rows written around the functions, completions read from the log,
/// and the configuration NOTIFY.
final class LogReaderTests: StoreTestCase {
    // MARK: Times a writer passes

    /// `select sightline.create_interaction('poison', 'infinity')` used to commit a row that no
    /// reader could convert, which stopped the tailer and the board's start-up.
    func testInfiniteTimesAreRefusedAndWriteNothing() throws {
        let talking = try interaction(in: .delivered)
        for time in ["infinity", "-infinity"] {
            try assertRefused(.badArgument, talking, namesInteraction: false) {
                try sql("select sightline.create_interaction($1, $2)", ["poison-\(talking)", time])
            }
            try assertRefused(.badArgument, talking) {
                try sql("select sightline.transition($1, 'held', $2, null, $3)", [String(talking), ann, time])
            }
            try assertRefused(.badArgument, talking) {
                try sql("select sightline.begin_transfer($1, 'agent', $2, null, $3)", [String(talking), bob, time])
            }
        }
        XCTAssertEqual(try sql("select count(*) from sightline.interactions where call_id = $1", ["poison-\(talking)"]).int(0, 0), 0)
        // The refusal says what was wrong and what to do.
        XCTAssertThrowsError(try sql("select sightline.create_interaction('poison', 'infinity')")) { error in
            guard case .refused(.badArgument, let message, let hint) = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("not a finite time"), message)
            XCTAssertNotNil(hint)
        }
    }

    func testTimesInTheFutureAreRefusedBeyondTheClockSkew() throws {
        let later = Date(timeIntervalSinceNow: 3600)
        let talking = try interaction(in: .delivered)
        try assertRefused(.timeInFuture, talking, namesInteraction: false) {
            try store.createInteraction(callID: "future-\(talking)", at: later)
        }
        try assertRefused(.timeInFuture, talking) { try store.transition(talking, to: .held, agent: ann, at: later) }
        try assertRefused(.timeInFuture, talking) { _ = try store.beginTransfer(talking, kind: "agent", target: bob, at: later) }
        try assertRefused(.timeInFuture, talking, namesInteraction: false) {
            try store.createInteraction(callID: "future-\(talking)", at: .distantFuture)
        }
        // Within the default allowance of 5 minutes: a writer's clock a little ahead is fine.
        let ahead = try store.createInteraction(callID: "ahead-\(talking)", at: Date(timeIntervalSinceNow: 60))
        XCTAssertEqual(try states(of: ahead), [.idle])

        // The allowance is the setting sightline.max_clock_skew.
        try sql("set sightline.max_clock_skew = '2 hours'")
        defer { _ = try? sql("reset sightline.max_clock_skew") }
        let accepted = try store.createInteraction(callID: "skewed-\(talking)", at: later)
        XCTAssertEqual(try states(of: accepted), [.idle])
        try sql("set sightline.max_clock_skew = '0'")
        try assertRefused(.timeInFuture, talking, namesInteraction: false) {
            try store.createInteraction(callID: "future-\(talking)", at: Date(timeIntervalSinceNow: 5))
        }
        // A setting that is not an interval refuses timed writes rather than allowing any time.
        try sql("set sightline.max_clock_skew = 'soon'")
        try assertRefused(.badArgument, talking, namesInteraction: false) {
            try store.createInteraction(callID: "future-\(talking)", at: Date())
        }
        // A write without a time is now, whatever the setting.
        XCTAssertNoThrow(try store.createInteraction(callID: "now-\(talking)"))
    }

    // MARK: Rows written around the functions

    /// A row with an infinite time, inserted directly (as a superuser may), comes back as
    /// unreadable in its place; the rows before and after it read normally.
    func testRowWrittenAroundTheFunctionsIsReadAsUnreadableInItsPlace() throws {
        let start = try lastPosition()
        let before = try newCall()
        let poisoned = try newCall()
        try sql("""
            insert into sightline.transitions (order_tx, interaction_id, version, from_state, to_state, at, queue_id, cause)
            values (pg_current_xact_id(), $1, 2, 'idle', 'queued', 'infinity', $2, 'writer')
            """, [String(poisoned), queue])
        // Later tests share the database: take it out again.
        addTeardownBlock { [store] in
            _ = try? store?.connection.query("delete from sightline.transitions where interaction_id = $1 and version = 2",
                                             [String(poisoned)])
        }
        let after = try newCall()

        let rows = try store.readLog(after: start, limit: 1000)
            .filter { [before, poisoned, after].contains($0.transition?.interactionID ?? interactionID(of: $0)) }
        XCTAssertEqual(rows.count, 4)
        guard rows.count == 4 else { return }
        XCTAssertEqual(rows[0].transition?.interactionID, before)
        XCTAssertEqual(rows[1].transition?.interactionID, poisoned)
        XCTAssertEqual(rows[1].transition?.version, 1)
        guard case .unreadable(let position, let id, let reason) = rows[2] else { return XCTFail("\(rows[2])") }
        XCTAssertEqual(id, poisoned)
        XCTAssertTrue(reason.contains("at"), reason)
        XCTAssertTrue(rows[1].position < position && position < rows[3].position, "in its place in the stream")
        XCTAssertEqual(rows[3].transition?.interactionID, after)

        // A tailer moves past it: reading after it gives what follows.
        let next = try store.readLog(after: position, limit: 1000)
        XCTAssertTrue(next.contains { $0.transition?.interactionID == after })
        XCTAssertFalse(next.contains { $0.position == position })

        // Readers of one interaction say what is wrong instead of crashing.
        XCTAssertThrowsError(try store.transitions(of: poisoned)) { error in
            guard case .unexpectedRow(let message) = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("\(poisoned)"), message)
        }
        XCTAssertThrowsError(try store.callerPath(of: poisoned))
    }

    /// `loadBoard` at start-up used to fail on such a row; now it skips it and says so.
    func testBoardLoadsWithAnUnreadableRowPresent() throws {
        let poisoned = try interaction(in: .queued)
        let healthy = try interaction(in: .delivered)
        try sql("update sightline.transitions set at = 'infinity' where interaction_id = $1 and version = 2", [String(poisoned)])
        addTeardownBlock { [store] in
            _ = try? store?.connection.query("""
                update sightline.transitions set at = (select state_since from sightline.interactions where id = $1)
                 where interaction_id = $1 and version = 2
                """, [String(poisoned)])
        }
        let position = try XCTUnwrap(try sql(
            "select order_tx::text, id from sightline.transitions where interaction_id = $1 and version = 2",
            [String(poisoned)]).uint64(0, 0))

        let (board, skipped) = try store.loadBoard()
        let mine = skipped.filter { interactionID(of: $0) == poisoned }
        XCTAssertEqual(mine.count, 1)
        XCTAssertEqual(mine.first?.position.orderTx, position)
        XCTAssertEqual(board.interactions[poisoned]?.version, 1, "the rows it could read are applied")
        XCTAssertEqual(board.interactions[healthy]?.state, .delivered)
        XCTAssertEqual(board.interactions[healthy]?.agent, ann)
    }

    /// An interaction whose last time is infinite takes no further step: a step would write
    /// another row no reader can convert.
    func testNoStepFollowsAnInfiniteLastTime() throws {
        let id = try interaction(in: .queued)
        let since = try XCTUnwrap(try sql("select state_since::text from sightline.interactions where id = $1", [String(id)]).string(0, 0))
        try sql("update sightline.interactions set state_since = 'infinity' where id = $1", [String(id)])
        addTeardownBlock { [store] in
            _ = try? store?.connection.query("update sightline.interactions set state_since = $2 where id = $1", [String(id), since])
        }
        try assertRefused(.badArgument, id) { try store.transition(id, to: .completed) }
        try assertRefused(.badArgument, id) { try store.transition(id, to: .completed, at: Date()) }
    }

    private func interactionID(of row: LogRow) -> Int64? {
        switch row {
        case .transition(let t): return t.interactionID
        case .presence: return nil
        case .unreadable(_, let id, _): return id
        }
    }

    // MARK: Completions: the log carries them, PostgreSQL counts them

    /// The figures of today of the test's queue, as `sightline.live_figures` reads them.
    private func queueToday(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let entry = try XCTUnwrap(try store.liveFigures().queues[queue], "no figures for \(queue)", file: file, line: line)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any], file: file, line: line)
        return try XCTUnwrap(object["today"] as? [String: Any], file: file, line: line)
    }

    /// A board fed from the log drops every completed interaction; what they count for is
    /// PostgreSQL's (`sightline.live_figures`), read from the same writes.
    func testCompletionsLeaveTheBoardAndPostgreSQLCountsThem() throws {
        let start = try lastPosition()
        let answered = try interaction(in: .afterCallWork)
        try store.transition(answered, to: .completed)
        let abandoned = try interaction(in: .queued)
        try store.transition(abandoned, to: .completed)
        let original = try interaction(in: .delivered)
        let leg = try store.beginTransfer(original, kind: "agent", target: bob)
        try store.transition(leg, to: .deliveryPending, agent: bob)
        try store.transition(leg, to: .delivered, agent: bob)
        try store.transition(leg, to: .afterCallWork)
        try store.transition(leg, to: .completed)
        try store.transition(original, to: .completed)

        var board = LiveBoard()
        for q in try store.queues() { board.queues[q.id] = q }
        var completed: Set<Int64> = []
        for row in try store.readLog(after: start, limit: 1000) {
            let t = try XCTUnwrap(row.transition, "\(row)")
            let change = board.apply(row)
            if t.to == .completed {
                completed.insert(t.interactionID)
                XCTAssertNotNil(change, "\(t)")
                XCTAssertNil(change?.interaction, "a completion removes the interaction: \(t)")
            }
        }
        XCTAssertEqual(completed, [answered, abandoned, leg, original])
        for id in completed { XCTAssertNil(board.interactions[id], "interaction \(id)") }
        let today = try queueToday()
        XCTAssertEqual(today["answered"] as? Int, 2)
        XCTAssertEqual(today["abandoned"] as? Int, 1)
        XCTAssertEqual(today["offered"] as? Int, 3)
        XCTAssertEqual(today["transfers"] as? Int, 1)
    }

    /// A transfer that fails inside one multi-statement transaction: the board returns the
    /// original to its agent, and PostgreSQL counts a failed transfer, not an abandon.
    func testFailedTransferInOneTransactionIsNotAnAbandon() throws {
        let start = try lastPosition()
        let original = try interaction(in: .delivered)
        let leg = try store.transaction { () throws -> Int64 in
            let leg = try store.beginTransfer(original, kind: "queue", target: queue)
            try store.transition(leg, to: .completed)
            return leg
        }
        XCTAssertEqual(try states(of: original).last, .delivered)

        var board = LiveBoard()
        for q in try store.queues() { board.queues[q.id] = q }
        var legCompleted = false
        for row in try store.readLog(after: start, limit: 1000) {
            let change = board.apply(row)
            if row.transition?.interactionID == leg, row.transition?.to == .completed {
                legCompleted = change != nil && change?.interaction == nil
            }
        }
        XCTAssertTrue(legCompleted)
        let stats = try XCTUnwrap(store.statistics(of: leg))
        XCTAssertTrue(stats.failedTransferLeg)
        XCTAssertFalse(stats.abandoned)
        let today = try queueToday()
        XCTAssertEqual(today["abandoned"] as? Int, 0)
        XCTAssertEqual(today["transfersFailed"] as? Int, 1)
        XCTAssertNil(board.interactions[leg])
        XCTAssertEqual(board.interactions[original]?.state, .delivered)
        XCTAssertNil(board.interactions[original]?.transfer)
    }

    // MARK: Configuration changes

    /// Queue and agent changes, through the functions or plain SQL, send NOTIFY sightline_config.
    func testQueueAndAgentChangesNotifyTheLiveServer() throws {
        let url = try XCTUnwrap(Self.url)
        let listener = try PostgresConnection(url)
        try listener.query("listen sightline_config")
        func notified(by change: () throws -> Void) throws -> Bool {
            _ = try listener.notifications()
            try change()
            for _ in 0..<200 {
                if try listener.notifications().contains(where: { $0.channel == "sightline_config" }) { return true }
                usleep(10_000)
            }
            return false
        }
        XCTAssertTrue(try notified { try store.upsertQueue(QueueConfig(id: queue, name: "Renamed")) })
        XCTAssertTrue(try notified { try store.upsertAgent(AgentConfig(id: ann, name: "Ann B", queues: [queue])) })
        XCTAssertTrue(try notified { try sql("update sightline.agents set name = 'Bob B' where id = $1", [bob]) })
        XCTAssertTrue(try notified { try sql("select sightline.upsert_queue($1, 'Other')", ["o-\(queue)"]) })
        XCTAssertFalse(try notified { _ = try store.queues() }, "a read sends nothing")
    }
}
