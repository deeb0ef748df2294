import Foundation
import InteractionModel
import InteractionStore
@testable import LiveServer
import LWS
import XCTest

/// When the live figures are re-read and what goes to whom, without a database.
final class FiguresFeedTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)   // 2027-01-15T08:00:00Z, an interval start

    func figures(interval start: Date, queues: [String: String], agents: [String: String] = [:]) -> LiveFigures {
        LiveFigures(periods: FigurePeriods(timeZone: "UTC", intervalStart: start, intervalEnd: start + 900,
                                           dayStart: Calendar.current.startOfDay(for: start), dayEnd: start + 86400, asOf: start),
                    queues: queues, agents: agents)
    }

    func testReadsAtMostOncePerSecondWhenTheLogMovesAndWhenTheIntervalEnds() {
        var feed = FiguresFeed()
        XCTAssertTrue(feed.shouldLoad(now: t0), "the first read at once")
        XCTAssertFalse(feed.shouldLoad(now: t0 + 5), "not while one is in flight")
        _ = feed.loaded(figures(interval: t0, queues: ["sales": "{}"]), took: 0.01)
        XCTAssertFalse(feed.shouldLoad(now: t0 + 2), "nothing moved")
        feed.logMoved()
        XCTAssertFalse(feed.shouldLoad(now: t0 + 0.5), "at most once a second")
        XCTAssertTrue(feed.shouldLoad(now: t0 + 1.2))
        _ = feed.loaded(figures(interval: t0, queues: ["sales": "{}"]), took: 0.01)
        XCTAssertFalse(feed.shouldLoad(now: t0 + 20))
        XCTAssertTrue(feed.shouldLoad(now: t0 + 31.3), "every 30 s while idle: presence times grow")
        _ = feed.loaded(figures(interval: t0, queues: ["sales": "{}"]), took: 0.01)
        XCTAssertTrue(feed.shouldLoad(now: t0 + 900), "the interval is over")
        _ = feed.loaded(nil)
        XCTAssertTrue(feed.shouldLoad(now: t0 + 901.1), "a failed read is retried")
        _ = feed.loaded(figures(interval: t0 + 900, queues: ["sales": "{}"]), took: 3)
        feed.logMoved()
        XCTAssertFalse(feed.shouldLoad(now: t0 + 910), "a slow read spaces the next ones")
        XCTAssertTrue(feed.shouldLoad(now: t0 + 913.2))
    }

    func testOnlyChangedEntriesUnlessThePeriodChanged() {
        var feed = FiguresFeed()
        _ = feed.shouldLoad(now: t0)
        let first = feed.loaded(figures(interval: t0, queues: ["sales": "{\"offered\":1}", "vip": "{}"], agents: ["ann": "{}"]))
        XCTAssertEqual(first, FiguresFeed.Update(complete: true, queues: ["sales", "vip"], agents: ["ann"]))
        _ = feed.shouldLoad(now: t0 + 2)
        let second = feed.loaded(figures(interval: t0, queues: ["sales": "{\"offered\":2}", "vip": "{}"], agents: ["ann": "{}"]))
        XCTAssertEqual(second, FiguresFeed.Update(complete: false, queues: ["sales"], agents: []))
        _ = feed.shouldLoad(now: t0 + 900)
        let next = feed.loaded(figures(interval: t0 + 900, queues: ["sales": "{\"offered\":2}", "vip": "{}"], agents: ["ann": "{}"]))
        XCTAssertEqual(next?.complete, true, "a new interval: everything")
    }

    /// A new not-ready reason (NOTIFY sightline_config) reaches the board and its clients.
    func testANewNotReadyReasonResynchronisesTheClients() throws {
        var board = LiveBoard()
        board.queues["sales"] = QueueConfig(id: "sales", name: "Sales")
        board.presenceReasons = [PresenceReason(code: "break", name: "Break")]
        var state = LiveState(board: board, limits: try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: 10),
                              access: TokenTable(), now: t0)
        let c = ConnectionID(1)
        _ = state.clientOpened(c, query: QueryItems(), now: t0)
        for case .buildSnapshots(let job) in state.clientMessage(c, #"{"type":"hello"}"#, now: t0) {
            _ = state.snapshotsBuilt(job.run(), position: job.position, builtAt: job.now, now: t0)
        }
        let queues = [QueueConfig(id: "sales", name: "Sales")]
        _ = state.reloadConfiguration()
        let same = state.configurationLoaded((queues, []), reasons: [PresenceReason(code: "break", name: "Break")], now: t0 + 1)
        XCTAssertFalse(same.contains { if case .buildSnapshots = $0 { return true } else { return false } }, "nothing changed")
        _ = state.reloadConfiguration()
        let more = [PresenceReason(code: "break", name: "Break"), PresenceReason(code: "coaching", name: "Coaching")]
        let changed = state.configurationLoaded((queues, []), reasons: more, now: t0 + 2)
        XCTAssertEqual(state.board.presenceReasons, more)
        XCTAssertTrue(changed.contains { if case .buildSnapshots = $0 { return true } else { return false } }, "a fresh snapshot")
    }

    /// /metrics reads today's queue figures from what SQL computed, nulls left out.
    func testTodayOfAQueueIsReadFromTheFigures() {
        var feed = FiguresFeed()
        XCTAssertNil(feed.today(ofQueue: "sales"), "nothing before the first read")
        _ = feed.shouldLoad(now: t0)
        _ = feed.loaded(figures(interval: t0, queues: [
            "sales": #"{"today": {"offered": 12, "serviceLevelPercent": 66.5, "asaSeconds": null}, "interval": {"offered": 2}}"#]))
        XCTAssertEqual(feed.today(ofQueue: "sales"), ["offered": 12, "serviceLevelPercent": 66.5])
        XCTAssertNil(feed.today(ofQueue: "vip"))
    }

    /// Each session gets the entries of its filter; a resumed one a complete message.
    func testFiguresMessagesFollowTheQueueFilter() throws {
        var board = LiveBoard()
        for q in ["sales", "vip"] { board.queues[q] = QueueConfig(id: q, name: q) }
        board.agents["ann"] = AgentConfig(id: "ann", name: "Ann", queues: ["sales"])
        board.agents["vic"] = AgentConfig(id: "vic", name: "Vic", queues: ["vip"])
        board.setPosition(LogPosition(orderTx: 100, id: 0))
        var state = LiveState(board: board, limits: try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: 10),
                              access: TokenTable(), now: t0)
        for (id, queues) in [(UInt64(1), "[\"sales\"]"), (2, "null")] {
            let c = ConnectionID(id)
            _ = state.clientOpened(c, query: QueryItems(), now: t0)
            let effects = state.clientMessage(c, #"{"type":"hello","queues":\#(queues)}"#, now: t0)
            for case .buildSnapshots(let job) in effects {
                _ = state.snapshotsBuilt(job.run(), position: job.position, builtAt: job.now, now: t0)
            }
        }
        let loaded = figures(interval: t0, queues: ["sales": "{\"interval\":{\"offered\":1}}", "vip": "{\"interval\":{\"offered\":5}}"],
                             agents: ["ann": "{\"interval\":{}}", "vic": "{\"interval\":{}}"])
        var sent: [ConnectionID: [String: Any]] = [:]
        for case .send(let c, let m) in state.figuresLoaded(loaded, now: t0) {
            sent[c] = try JSONSerialization.jsonObject(with: Data(m.text.utf8)) as? [String: Any]
        }
        func keys(_ id: UInt64, _ scope: String) -> Set<String> {
            Set(((sent[ConnectionID(id)]?["figures"] as? [String: Any])?[scope] as? [String: Any] ?? [:]).keys)
        }
        XCTAssertEqual(sent[ConnectionID(1)]?["type"] as? String, "figures")
        XCTAssertEqual(sent[ConnectionID(1)]?["complete"] as? Bool, true)
        XCTAssertEqual(keys(1, "queues"), ["sales"])
        XCTAssertEqual(keys(1, "agents"), ["ann"])
        XCTAssertEqual(keys(2, "queues"), ["sales", "vip"])
        XCTAssertEqual(keys(2, "agents"), ["ann", "vic"])

        // Only vip changed: the sales-only session gets nothing.
        var changed = loaded
        changed.queues["vip"] = "{\"interval\":{\"offered\":6}}"
        _ = state.tick(now: t0 + 2)
        let again = state.figuresLoaded(changed, now: t0 + 2)
        let to: [ConnectionID] = again.compactMap { if case .send(let c, _) = $0 { return c } else { return nil } }
        XCTAssertEqual(to, [ConnectionID(2)])

        // The snapshot carries them.
        let snapshot = state.snapshotJob(filters: [["sales"]], now: t0 + 3).encode(["sales"])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(snapshot.utf8)) as? [String: Any])
        let board2 = try XCTUnwrap(object["board"] as? [String: Any])
        let f = try XCTUnwrap(board2["figures"] as? [String: Any])
        XCTAssertEqual(Set((f["queues"] as? [String: Any] ?? [:]).keys), ["sales"])
        XCTAssertEqual(f["timeZone"] as? String, "UTC")
    }
}
