import Foundation
import InteractionModel
@testable import LiveServer
import LWS
import XCTest

/// Alerts in the live state: evaluated on the tick, handed to the outbox, sent to the
/// dashboards that watch the queue, carried by snapshots.
extension LiveStateTests {
    func alertMessages(_ sent: [(ConnectionID, String)]) -> [(ConnectionID, [String: Any])] {
        sent.compactMap { c, text in
            guard let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], o["type"] as? String == "alert",
                  let alert = o["alert"] as? [String: Any] else { return nil }
            return (c, alert)
        }
    }

    func testATickDecidesAlertsAtMostEverySecondAndSendsThemToTheQueuesWatchers() throws {
        var state = try makeState()
        state.alerts = AlertEvaluator(configuration: try AlertConfiguration.parse(Data(#"""
            {"defaults": {"longest_wait": {"threshold": 5}, "no_agent_ready": {"enabled": false}, "stream_stale": {"enabled": false}}}
            """#.utf8)))
        _ = subscribe(&state, 1, queues: ["sales"], now: t0)
        _ = subscribe(&state, 2, queues: ["support"], now: t0)
        _ = subscribe(&state, 3, now: t0)
        _ = state.rowsArrived(queuedCall("sales"), now: t0)
        XCTAssertTrue(alertMessages(sends(state.tick(now: t0.addingTimeInterval(4)))).isEmpty)
        var effects = state.tick(now: t0.addingTimeInterval(5.5))
        var decided: [AlertEvent] = []
        for case .alertsDecided(let events) in effects { decided += events }
        XCTAssertEqual(decided.map(\.alert.rule), [.longestWait])
        let messages = alertMessages(sends(effects))
        XCTAssertEqual(messages.map(\.0), [ConnectionID(1), ConnectionID(3)], "not the dashboard of another queue")
        XCTAssertEqual(messages.first?.1["queue"] as? String, "sales")
        XCTAssertEqual(messages.first?.1["state"] as? String, "firing")
        XCTAssertEqual(messages.first?.1["id"] as? String, decided.first?.alert.id)

        // Evaluated at most once per evaluation interval, and each decision only once.
        XCTAssertEqual(state.alerts.evaluations, 2)
        effects = state.tick(now: t0.addingTimeInterval(5.75))
        XCTAssertEqual(state.alerts.evaluations, 2)
        effects += state.tick(now: t0.addingTimeInterval(6.6))
        XCTAssertEqual(state.alerts.evaluations, 3)
        XCTAssertTrue(alertMessages(sends(effects)).isEmpty)

        // Snapshots carry the firing alerts, filtered like the board.
        let sales = try XCTUnwrap(state.snapshotJob(filters: [["sales"]], now: t0).run().first?.message.text)
        let support = try XCTUnwrap(state.snapshotJob(filters: [["support"]], now: t0).run().first?.message.text)
        let alerts = { (text: String) in
            ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["alerts"] as? [[String: Any]]
        }
        XCTAssertEqual(alerts(sales)?.map { $0["rule"] as? String }, ["longest_wait"])
        XCTAssertEqual(alerts(support)?.count, 0)
    }

    func testTheStaleStreamAlertReachesEveryDashboard() throws {
        var state = try makeState()
        state.alerts = AlertEvaluator(configuration: try AlertConfiguration.parse(Data(#"""
            {"defaults": {"longest_wait": {"enabled": false}, "no_agent_ready": {"enabled": false}}}
            """#.utf8)))
        _ = subscribe(&state, 1, queues: ["sales"], now: t0)
        _ = subscribe(&state, 2, queues: ["support"], now: t0)
        _ = state.databaseChanged(up: false, now: t0)
        let messages = alertMessages(sends(state.tick(now: t0.addingTimeInterval(1))))
        XCTAssertEqual(messages.map(\.0), [ConnectionID(1), ConnectionID(2)])
        XCTAssertEqual(messages.first?.1["rule"] as? String, "stream_stale")
    }
}

extension LiveStateTests {
    func testWindowRulesReadTheFiguresOffTheLoopEveryFewSecondsAndJudgeThem() throws {
        var state = try makeState()
        state.alerts = AlertEvaluator(configuration: try AlertConfiguration.parse(Data(#"""
            {"defaults": {"service_level": {"for": 0, "minOffered": 1}, "longest_wait": {"enabled": false},
                          "no_agent_ready": {"enabled": false}, "stream_stale": {"enabled": false}}}
            """#.utf8)))
        var effects = state.tick(now: t0.addingTimeInterval(1))
        var loads: [Set<Double>] = []
        for case .loadAlertFigures(let lengths) in effects { loads.append(lengths) }
        XCTAssertEqual(loads, [[3600]])
        effects = state.tick(now: t0.addingTimeInterval(2))
        XCTAssertTrue(effects.allSatisfy { if case .loadAlertFigures = $0 { false } else { true } }, "one read at a time")
        state.alertFiguresLoaded([3600: ["sales": WindowFigures(offered: 5, serviceLevelPercent: 40, abandonPercent: 0)]])
        effects = state.tick(now: t0.addingTimeInterval(3))
        var decided: [AlertEvent] = []
        for case .alertsDecided(let events) in effects { decided += events }
        XCTAssertEqual(decided.map(\.alert.rule), [.serviceLevel])
        XCTAssertEqual(decided.first?.alert.queue, "sales")
        effects = state.tick(now: t0.addingTimeInterval(16.1))
        XCTAssertTrue(effects.contains { if case .loadAlertFigures = $0 { true } else { false } }, "read again after 15 s")
    }
}
