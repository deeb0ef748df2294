import Foundation
import InteractionModel
@testable import LiveServer
import LWS
import XCTest

/// The live state driven without sockets or a database: rows in, effects out.
final class LiveStateTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    var nextID: Int64 = 0

    func makeState(batchMilliseconds: Int = 15, snapshotMaxAge: TimeInterval = 1, maxReplay: Int = 20_000,
                   access: TokenTable = TokenTable()) throws -> LiveState {
        var board = LiveBoard()
        for q in ["sales", "support"] { board.queues[q] = QueueConfig(id: q, name: q.capitalized) }
        board.setPosition(LogPosition(orderTx: 100, id: 0))
        let limits = try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: batchMilliseconds,
                                          frameDeltas: 3, maxReplayDeltas: maxReplay, snapshotMaxAge: snapshotMaxAge)
        return LiveState(board: board, limits: limits, access: access, now: t0)
    }

    /// A new interaction queued in `queue` (two rows), at positions after the last one.
    func queuedCall(_ queue: String?) -> [LogRow] {
        nextID += 1
        let created = Transition(position: LogPosition(orderTx: 200, id: nextID * 10), interactionID: nextID, callID: "c\(nextID)",
                                 version: 1, from: nil, to: .idle, at: t0)
        guard let queue else { return [.transition(created)] }
        let queued = Transition(position: LogPosition(orderTx: 200, id: nextID * 10 + 1), interactionID: nextID, callID: "c\(nextID)",
                                version: 2, from: .idle, to: .queued, at: t0, queue: queue)
        return [.transition(created), .transition(queued)]
    }

    func sends(_ effects: [LiveState.Effect]) -> [(ConnectionID, String)] {
        effects.compactMap {
            guard case .send(let c, let m) = $0 else { return nil }
            return (c, m.text)
        }
    }

    func job(_ effects: [LiveState.Effect]) -> SnapshotJob? {
        for case .buildSnapshots(let job) in effects { return job }
        return nil
    }

    /// Opens a session with `hello` and completes its snapshot job.
    func subscribe(_ state: inout LiveState, _ id: UInt64, queues: [String]? = nil, now: Date) -> [(ConnectionID, String)] {
        let c = ConnectionID(id)
        _ = state.clientOpened(c, query: QueryItems(), now: now)
        let q = queues.map { "[" + $0.map { "\"\($0)\"" }.joined(separator: ",") + "]" } ?? "null"
        let effects = state.clientMessage(c, #"{"type":"hello","queues":\#(q)}"#, now: now)
        guard let job = job(effects) else { return sends(effects) }
        return sends(effects) + sends(state.snapshotsBuilt(job.run(), position: job.position, builtAt: job.now, now: now))
    }

    func deltaIDs(_ text: String) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let deltas = object["deltas"] as? [[String: Any]] else { return [] }
        return deltas.compactMap { $0["position"] as? String }
    }

    func testLimitsAreChecked() {
        XCTAssertThrowsError(try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: 15, frameDeltas: 0))
        XCTAssertThrowsError(try LiveState.Limits(resumeCapacity: 0, heartbeatSeconds: 5, batchMilliseconds: 15))
        XCTAssertThrowsError(try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 0, batchMilliseconds: 15))
        XCTAssertThrowsError(try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: 0))
    }

    func testADeltaGoesOutAtOnceWhenIdleAndDeltasBatchPerTickUnderLoad() throws {
        var state = try makeState()
        XCTAssertEqual(subscribe(&state, 1, now: t0).count, 1, "the snapshot")
        let first = sends(state.rowsArrived(queuedCall("sales"), now: t0 + 1))
        XCTAssertEqual(first.count, 1, "idle: out at once, one frame")
        XCTAssertEqual(deltaIDs(first[0].1).count, 2)
        // Within the same tick: nothing goes out, a flush is scheduled once.
        let second = state.rowsArrived(queuedCall("sales"), now: t0 + 1.005)
        XCTAssertTrue(sends(second).isEmpty)
        guard case .scheduleFlush(let ms)? = second.first else { return XCTFail("\(second)") }
        XCTAssertEqual(ms, 10)
        XCTAssertTrue(state.rowsArrived(queuedCall("support"), now: t0 + 1.010).isEmpty, "already scheduled")
        let flushed = sends(state.flush(now: t0 + 1.015))
        XCTAssertEqual(flushed.count, 2, "four deltas in frames of at most three")
        XCTAssertEqual(flushed.flatMap { deltaIDs($0.1) }, ["200.20", "200.21", "200.30", "200.31"])
        XCTAssertTrue(state.flush(now: t0 + 1.03).isEmpty, "nothing twice")
    }

    func testTheTickStretchesWhileClientsAreBehindAndShrinksWhenTheyKeepUp() throws {
        var state = try makeState(batchMilliseconds: 10)
        for i in 1...10 { _ = subscribe(&state, UInt64(i), now: t0) }
        var now = t0 + 1
        state.clientsBacklogged(5)   // half of the clients still write earlier frames
        for _ in 0..<10 {
            _ = state.rowsArrived(queuedCall("sales"), now: now)
            _ = state.flush(now: now)
            now += 0.2
        }
        XCTAssertEqual(state.tickMilliseconds, 100, "stretched to the maximum")
        let waiting = state.rowsArrived(queuedCall("sales"), now: now - 0.2 + 0.05)  // 50 ms after the last flush
        guard case .scheduleFlush(let ms)? = waiting.first else { return XCTFail("\(waiting)") }
        XCTAssertEqual(ms, 50, "the next frame waits for the stretched tick")
        state.clientsBacklogged(1)   // one in ten: keeping up
        for _ in 0..<20 {
            _ = state.flush(now: now)
            _ = state.rowsArrived(queuedCall("sales"), now: now + 1)
            now += 1
        }
        XCTAssertEqual(state.tickMilliseconds, 10, "back to the configured tick")
    }

    func testOneFramePerFilterSharedBySessionsAndQueuelessDeltasOnlyForEveryQueue() throws {
        var state = try makeState()
        _ = subscribe(&state, 1, now: t0)
        _ = subscribe(&state, 2, now: t0)
        _ = subscribe(&state, 3, queues: ["sales"], now: t0)
        _ = subscribe(&state, 4, queues: ["support"], now: t0)
        let effects = state.rowsArrived(queuedCall("sales") + queuedCall(nil), now: t0 + 1)
        let out = sends(effects)
        let byClient = Dictionary(grouping: out, by: { $0.0 }).mapValues { $0.flatMap { deltaIDs($0.1) } }
        XCTAssertEqual(byClient[ConnectionID(1)], ["200.10", "200.11", "200.20"])
        XCTAssertEqual(byClient[ConnectionID(2)], byClient[ConnectionID(1)])
        XCTAssertEqual(byClient[ConnectionID(3)], ["200.11"], "the idle row has no queue yet; queued in sales does")
        XCTAssertNil(byClient[ConnectionID(4)], "nothing for support")
        // Sessions with the same filter share one message object.
        var messages: [ConnectionID: OutgoingMessage] = [:]
        for case .send(let c, let m) in effects { messages[c] = m }
        XCTAssertTrue(messages[ConnectionID(1)] === messages[ConnectionID(2)])
    }

    func testAQueueScopedReaderSeesThatACallIsTransferredButNotWhereTo() throws {
        var state = try makeState()
        _ = state.configurationLoaded(([QueueConfig(id: "sales", name: "Sales"), QueueConfig(id: "support", name: "Support")],
                                       [AgentConfig(id: "sue", name: "Sue", queues: ["support"]),
                                        AgentConfig(id: "bo", name: "Bo", queues: ["sales", "support"])]), now: t0)
        _ = subscribe(&state, 1, now: t0)
        _ = subscribe(&state, 2, queues: ["sales"], now: t0)
        _ = subscribe(&state, 3, queues: ["support"], now: t0)
        // Sales calls transferred: (kind, target, whether a reader of sales may see the target).
        let cases: [(TransferKind, String, Bool)] = [(.queue, "support", false), (.agent, "sue", false),
                                                     (.agent, "bo", true), (.queue, "sales", true)]
        var rows: [LogRow] = []
        var expected: [Int64: (String, Bool)] = [:]
        for (kind, target, salesSees) in cases {
            rows += queuedCall("sales")
            expected[nextID] = (target, salesSees)
            rows.append(.transition(Transition(position: LogPosition(orderTx: 200, id: nextID * 10 + 2), interactionID: nextID,
                                               callID: "c\(nextID)", version: 3, from: .queued, to: .queued, at: t0,
                                               cause: .transferStarted,
                                               transfer: TransferInfo(newInteraction: 900 + nextID, kind: kind, target: target))))
        }
        /// interaction id -> its transfer's target (NSNull when hidden) in the deltas `client` got.
        func targets(_ client: UInt64, _ out: [(ConnectionID, String)]) -> [Int64: Any] {
            var found: [Int64: Any] = [:]
            for (c, text) in out where c == ConnectionID(client) {
                let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                for delta in object?["deltas"] as? [[String: Any]] ?? [] {
                    guard let i = delta["interaction"] as? [String: Any], let t = i["transfer"] as? [String: Any],
                          let id = (i["id"] as? NSNumber)?.int64Value else { continue }
                    found[id] = t["target"]
                }
            }
            return found
        }
        let out = sends(state.rowsArrived(rows, now: t0 + 1))
        let everyQueue = targets(1, out), sales = targets(2, out)
        XCTAssertEqual(everyQueue.count, cases.count)
        XCTAssertEqual(sales.count, cases.count)
        for (id, (target, salesSees)) in expected {
            XCTAssertEqual(everyQueue[id] as? String, target, "a reader of every queue sees \(target)")
            if salesSees {
                XCTAssertEqual(sales[id] as? String, target, "a reader of sales sees \(target)")
            } else {
                XCTAssertTrue(sales[id] is NSNull, "a reader of sales does not see \(target): \(String(describing: sales[id]))")
            }
        }
        XCTAssertTrue(targets(3, out).isEmpty, "sales calls are not support's")
        // Snapshots hide it the same way.
        let job = state.snapshotJob(filters: [], now: t0 + 2)
        let salesSnapshot = job.encode(["sales"])
        XCTAssertFalse(salesSnapshot.contains(#""target":"support""#) || salesSnapshot.contains(#""target":"sue""#), salesSnapshot)
        XCTAssertTrue(salesSnapshot.contains(#""target":"bo""#) && salesSnapshot.contains(#""target":"sales""#))
        XCTAssertEqual(salesSnapshot.components(separatedBy: #""target":null"#).count - 1, 2)
        let fullSnapshot = job.encode(nil)
        XCTAssertTrue(fullSnapshot.contains(#""target":"support""#) && fullSnapshot.contains(#""target":"sue""#))
    }

    func testASnapshotBuiltOffTheLoopIsFollowedByEverythingAfterIt() throws {
        var state = try makeState()
        _ = subscribe(&state, 1, now: t0)
        _ = state.rowsArrived(queuedCall("sales"), now: t0 + 1)
        // Client 2 says hello: its snapshot job starts at the current position...
        _ = state.clientOpened(ConnectionID(2), query: QueryItems(), now: t0 + 2)
        let hello = state.clientMessage(ConnectionID(2), #"{"type":"hello"}"#, now: t0 + 2)
        let pending = try XCTUnwrap(job(hello))
        XCTAssertEqual(pending.position, LogPosition(orderTx: 200, id: 11))
        // ...rows arrive while it is encoded: client 1 gets them, client 2 does not yet.
        let meanwhile = sends(state.rowsArrived(queuedCall("sales"), now: t0 + 3))
        XCTAssertEqual(meanwhile.map(\.0), [ConnectionID(1)])
        // The snapshot arrives: then exactly the deltas after it, once.
        let delivered = sends(state.snapshotsBuilt(pending.run(), position: pending.position, builtAt: pending.now, now: t0 + 3.1))
        XCTAssertEqual(delivered.count, 2)
        XCTAssertTrue(delivered[0].1.hasPrefix("{\"type\":\"snapshot\""))
        XCTAssertTrue(delivered[0].1.contains("\"position\":\"200.11\""))
        XCTAssertEqual(deltaIDs(delivered[1].1), ["200.20", "200.21"])
        let next = sends(state.rowsArrived(queuedCall("sales"), now: t0 + 4))
        XCTAssertEqual(Set(next.map(\.0)), [ConnectionID(1), ConnectionID(2)])
        XCTAssertEqual(deltaIDs(next[0].1), ["200.30", "200.31"])
    }

    func testABurstOfHellosIsOneJobAtATimeWithOneEncodingPerFilter() throws {
        var state = try makeState(snapshotMaxAge: 0)
        var jobs: [SnapshotJob] = []
        for i in 1...200 {
            let c = ConnectionID(UInt64(i))
            _ = state.clientOpened(c, query: QueryItems(), now: t0)
            let queues = i % 2 == 0 ? #"["sales"]"# : #"["q\#(i)"]"#
            if let j = job(state.clientMessage(c, #"{"type":"hello","queues":\#(queues)}"#, now: t0)) { jobs.append(j) }
        }
        XCTAssertEqual(jobs.count, 1, "one job in flight")
        XCTAssertEqual(jobs[0].filters.count, 1, "the first hello's filter")
        let first = state.snapshotsBuilt(jobs[0].run(), position: jobs[0].position, builtAt: t0, now: t0)
        XCTAssertEqual(sends(first).count, 1, "the first client got its snapshot")
        let second = try XCTUnwrap(job(first), "the rest in the next job")
        XCTAssertEqual(second.filters.count, 100, "99 distinct odd filters and sales, each encoded once")
        let done = sends(state.snapshotsBuilt(second.run(), position: second.position, builtAt: t0, now: t0))
        XCTAssertEqual(Set(done.map(\.0)).count, 199)
        XCTAssertTrue(state.sessions.values.allSatisfy { !$0.awaitingSnapshot })
    }

    func testAFreshSnapshotIsReusedWithTheDeltasAfterIt() throws {
        var state = try makeState(snapshotMaxAge: 1)
        _ = subscribe(&state, 1, now: t0)
        _ = state.rowsArrived(queuedCall("sales"), now: t0 + 0.1)
        _ = state.clientOpened(ConnectionID(2), query: QueryItems(), now: t0 + 0.2)
        let reused = state.clientMessage(ConnectionID(2), #"{"type":"hello"}"#, now: t0 + 0.2)
        XCTAssertNil(job(reused), "no new job within the snapshot's age")
        let out = sends(reused)
        XCTAssertEqual(out.count, 2)
        XCTAssertTrue(out[0].1.contains("\"position\":\"100.0\""))
        XCTAssertEqual(deltaIDs(out[1].1), ["200.10", "200.11"])
        _ = state.clientOpened(ConnectionID(3), query: QueryItems(), now: t0 + 2)
        XCTAssertNotNil(job(state.clientMessage(ConnectionID(3), #"{"type":"hello"}"#, now: t0 + 2)), "too old: a new one")
    }

    func testACachedSnapshotWithALongCatchUpIsNotReused() throws {
        var state = try makeState(snapshotMaxAge: 100)
        _ = subscribe(&state, 1, now: t0)
        for _ in 0..<200 { _ = state.rowsArrived(queuedCall("sales"), now: t0 + 1) }   // 400 deltas
        _ = state.flush(now: t0 + 2)
        _ = state.clientOpened(ConnectionID(2), query: QueryItems(), now: t0 + 2)
        let hello = state.clientMessage(ConnectionID(2), #"{"type":"hello"}"#, now: t0 + 2)
        XCTAssertNotNil(job(hello), "400 deltas after the cached snapshot: a fresh one is built")
    }

    func testASlowClientIsResynchronisedThenClosed() throws {
        var state = try makeState(snapshotMaxAge: 100)
        _ = subscribe(&state, 1, now: t0)
        for i in 0..<3 {
            let effects = state.overflowed(ConnectionID(1), now: t0 + Double(i))
            guard case .discardQueued(ConnectionID(1))? = effects.first else { return XCTFail("\(effects)") }
            XCTAssertTrue(sends(effects).first?.1.hasPrefix("{\"type\":\"snapshot\"") == true)
        }
        let last = state.overflowed(ConnectionID(1), now: t0 + 3)
        XCTAssertTrue(last.contains { if case .close(ConnectionID(1), 4429, _) = $0 { return true } else { return false } })
        XCTAssertNil(state.sessions[ConnectionID(1)])
        XCTAssertEqual(state.counters.slowClientsClosed, 1)
    }

    func testResumeReplaysWhatWasMissedOrFallsBackToASnapshot() throws {
        var state = try makeState(maxReplay: 4)
        _ = subscribe(&state, 1, now: t0)
        _ = state.rowsArrived(queuedCall("sales"), now: t0 + 1)
        _ = state.rowsArrived(queuedCall("sales"), now: t0 + 2)
        _ = state.clientOpened(ConnectionID(2), query: QueryItems(), now: t0 + 3)
        let resumed = sends(state.clientMessage(ConnectionID(2), #"{"type":"hello","resume":"200.11"}"#, now: t0 + 3))
        XCTAssertEqual(resumed.first?.1, #"{"type":"resumed","position":"200.11"}"#)
        XCTAssertEqual(resumed.dropFirst().flatMap { deltaIDs($0.1) }, ["200.20", "200.21"])
        _ = state.rowsArrived(queuedCall("sales") + queuedCall("sales"), now: t0 + 4)
        _ = state.clientOpened(ConnectionID(3), query: QueryItems(), now: t0 + 5)
        let tooMany = state.clientMessage(ConnectionID(3), #"{"type":"hello","resume":"200.11"}"#, now: t0 + 5)
        XCTAssertNotNil(job(tooMany), "six missed deltas are more than four: a snapshot")
        _ = state.clientOpened(ConnectionID(4), query: QueryItems(), now: t0 + 5)
        let future = sends(state.clientMessage(ConnectionID(4), #"{"type":"hello","resume":"999.1"}"#, now: t0 + 5))
        XCTAssertFalse(future.contains { $0.1.contains("resumed") }, "a position from the future is not resumed")
        XCTAssertEqual(state.sessions[ConnectionID(4)]?.awaitingSnapshot, true, "it waits for the snapshot job in flight")
    }

    func testAnUnreadableRowIsCountedAndSkippedInPlace() throws {
        var state = try makeState()
        _ = subscribe(&state, 1, now: t0)
        let bad = LogRow.unreadable(position: LogPosition(orderTx: 150, id: 1), interactionID: 9, reason: "time is infinity")
        let effects = state.rowsArrived([bad] + queuedCall("sales"), now: t0 + 1)
        XCTAssertEqual(state.counters.skippedRows, 1)
        XCTAssertEqual(state.lastSkipped?.reason, "time is infinity")
        XCTAssertTrue(effects.contains { if case .log(.warning, _) = $0 { return true } else { return false } })
        XCTAssertEqual(sends(effects).flatMap { deltaIDs($0.1) }, ["200.10", "200.11"], "later rows still go out")
    }

    func testRowsNamingUnknownQueuesReloadTheConfigurationOnce() throws {
        var state = try makeState()
        let first = state.rowsArrived(queuedCall("new-queue"), now: t0)
        XCTAssertEqual(first.filter { if case .reloadConfiguration = $0 { return true } else { return false } }.count, 1)
        let second = state.rowsArrived(queuedCall("new-queue"), now: t0)
        XCTAssertFalse(second.contains { if case .reloadConfiguration = $0 { return true } else { return false } }, "one in flight")
        _ = subscribe(&state, 1, now: t0)
        let loaded = state.configurationLoaded(([QueueConfig(id: "new-queue", name: "New")], []), now: t0 + 1)
        XCTAssertTrue(loaded.contains { if case .reloadConfiguration = $0 { return true } else { return false } }, "asked again meanwhile")
        XCTAssertNotNil(job(loaded), "clients get a snapshot with the new queue")
        XCTAssertEqual(Array(state.board.queues.keys), ["new-queue"])
    }

    /// A snapshot job that was building when the configuration changed holds the old queues and
    /// agents: it is neither cached nor sent, and a new job starts (clients opened meanwhile
    /// once missed a new agent until their next snapshot).
    func testASnapshotBuiltBeforeAConfigurationChangeIsNotServedAfterIt() throws {
        var state = try makeState()
        let c = ConnectionID(1)
        _ = state.clientOpened(c, query: QueryItems(), now: t0)
        guard let stale = job(state.clientMessage(c, #"{"type":"hello"}"#, now: t0)) else { return XCTFail("no job") }
        let ann = AgentConfig(id: "ann", name: "Ann", queues: ["sales"])
        let loaded = state.configurationLoaded(([QueueConfig(id: "sales", name: "Sales"), QueueConfig(id: "support", name: "Support")], [ann]),
                                               now: t0 + 0.1)
        XCTAssertNil(job(loaded), "one job at a time")
        let built = state.snapshotsBuilt(stale.run(), position: stale.position, builtAt: stale.now, now: t0 + 0.2)
        XCTAssertTrue(sends(built).isEmpty, "the old configuration is not sent")
        guard let fresh = job(built) else { return XCTFail("a new job must start: \(built)") }
        let sent = sends(state.snapshotsBuilt(fresh.run(), position: fresh.position, builtAt: fresh.now, now: t0 + 0.3))
        XCTAssertEqual(sent.count, 1)
        XCTAssertTrue(sent[0].1.contains(#""id":"ann""#), sent[0].1)
        // A client opened now gets the cached snapshot, with the agent.
        XCTAssertTrue(subscribe(&state, 2, now: t0 + 0.4).first?.1.contains(#""id":"ann""#) == true)
    }

    func testHeartbeatsAndTokens() throws {
        var state = try makeState(access: TokenTable(bootstrapHash: TokenSecret.hashHex("t1")))
        _ = state.clientOpened(ConnectionID(1), query: QueryItems(), now: t0)
        _ = state.clientMessage(ConnectionID(1), #"{"type":"hello","token":"t1"}"#, now: t0)
        XCTAssertTrue(state.sessions[ConnectionID(1)]?.subscription.isLive == true)
        _ = state.clientOpened(ConnectionID(2), query: QueryItems(), now: t0)
        let refused = state.clientMessage(ConnectionID(2), #"{"type":"hello","token":"nope"}"#, now: t0)
        XCTAssertTrue(refused.contains { if case .close(ConnectionID(2), 4401, _) = $0 { return true } else { return false } })
        let inURL = state.clientOpened(ConnectionID(3), query: QueryItems(fragments: ["token=t1"]), now: t0)
        XCTAssertTrue(inURL.contains { if case .close(ConnectionID(3), 4400, _) = $0 { return true } else { return false } },
                      "a token in the URL is refused, even a good one")
        XCTAssertTrue(sends(state.tick(now: t0 + 4)).isEmpty)
        XCTAssertTrue(sends(state.tick(now: t0 + 5)).isEmpty, "still waiting for its snapshot: no heartbeat yet")
    }
}
