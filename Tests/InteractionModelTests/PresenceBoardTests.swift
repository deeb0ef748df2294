import Foundation
import InteractionModel
import XCTest

/// Presence on the board: only a ready agent without an interaction is available; presence
/// changes apply once each, in version order, like transitions.
final class PresenceBoardTests: XCTestCase {
    var board = LiveBoard()
    var log = LogBuilder()
    var presenceVersions: [String: Int] = [:]
    var presenceStates: [String: (PresenceState, String?)] = [:]

    override func setUp() {
        board.queues["sales"] = QueueConfig(id: "sales", name: "Sales")
        board.agents["ann"] = AgentConfig(id: "ann", name: "Ann", queues: ["sales"])
        board.agents["ivr"] = AgentConfig(id: "ivr", name: "IVR", isVoiceApplication: true)
    }

    func change(_ agent: String, _ to: PresenceState, reason: String? = nil) -> PresenceChange {
        log.nextID += 1
        let version = (presenceVersions[agent] ?? 0) + 1
        presenceVersions[agent] = version
        let (from, fromReason) = presenceStates[agent] ?? (.loggedOut, nil)
        presenceStates[agent] = (to, reason)
        return PresenceChange(position: LogPosition(orderTx: 100, id: log.nextID), agent: agent, version: version,
                              from: from, fromReason: fromReason, to: to, reason: reason, at: log.clock)
    }

    func activity(_ agent: String) -> LiveBoard.AgentActivity? {
        board.agentStatuses.first { $0.agent == agent }?.activity
    }

    func testLoggedOutAndNotReadyAgentsAreNeverAvailable() {
        XCTAssertEqual(activity("ann"), .loggedOut)
        let login = change("ann", .ready)
        XCTAssertEqual(board.apply(login)?.loggedInSince, login.at)
        XCTAssertEqual(activity("ann"), .available)
        log.advance(60)
        let pause = change("ann", .notReady, reason: "break")
        XCTAssertEqual(board.apply(pause), AgentPresence(state: .notReady, reason: "break", since: pause.at,
                                                         loggedInSince: login.at, version: 2))
        XCTAssertEqual(activity("ann"), .notReady)
        // An interaction decides the activity whatever the presence (a not-ready agent in wrap-up).
        _ = board.apply(log.step(1, .idle))
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        _ = board.apply(log.step(1, .delivered, agent: "ann"))
        XCTAssertEqual(activity("ann"), .talking)
        _ = board.apply(log.step(1, .afterCallWork, agent: "ann"))
        _ = board.apply(log.step(1, .completed, agent: "ann"))
        XCTAssertEqual(activity("ann"), .notReady, "back from the call, still not ready: not available")
        _ = board.apply(change("ann", .loggedOut))
        XCTAssertEqual(activity("ann"), .loggedOut)
        XCTAssertNil(board.presence(of: "ann").loggedInSince)
        XCTAssertNil(board.agentStatuses.first { $0.agent == "ivr" }, "voice applications have no status")
    }

    func testAPresenceChangeAppliesOnceAndMovesThePosition() {
        let login = change("ann", .ready)
        XCTAssertNotNil(board.apply(login))
        XCTAssertNil(board.apply(login), "replayed: already applied")
        XCTAssertEqual(board.position, login.position)
        XCTAssertNil(board.apply(.presence(login)), "through the log row too")
        XCTAssertEqual(board.presence(of: "ann").version, 1)
    }
}
