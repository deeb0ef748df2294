import Foundation
import InteractionModel
import XCTest

/// Builds transitions the way the store writes them.
struct LogBuilder {
    var nextID: Int64 = 0
    var versions: [Int64: Int] = [:]
    var states: [Int64: InteractionState] = [:]
    var clock = Date(timeIntervalSince1970: 1_800_000_000)

    mutating func advance(_ seconds: Double) { clock += seconds }

    mutating func step(_ id: Int64, _ to: InteractionState, agent: String? = nil, queue: String? = nil,
                       heldBy: String? = nil, cause: TransitionCause = .writer, transferFrom: Int64? = nil,
                       transfer: TransferInfo? = nil) -> Transition {
        nextID += 1
        let version = (versions[id] ?? 0) + 1
        versions[id] = version
        let from = states[id]
        states[id] = to
        return Transition(position: LogPosition(orderTx: 100, id: nextID), interactionID: id, callID: "call-\(id)",
                          version: version, from: from, to: to, at: clock, agent: agent, queue: queue, heldBy: heldBy,
                          cause: cause, transferFrom: transferFrom, transfer: transfer)
    }
}

final class BoardTests: XCTestCase {
    var board = LiveBoard()
    var log = LogBuilder()

    override func setUp() {
        board.queues["sales"] = QueueConfig(id: "sales", name: "Sales", serviceLevelSeconds: 20)
        board.agents["ann"] = AgentConfig(id: "ann", name: "Ann", queues: ["sales"])
        board.agents["bob"] = AgentConfig(id: "bob", name: "Bob", queues: ["sales"])
    }

    @discardableResult
    func apply(_ t: Transition, file: StaticString = #filePath, line: UInt = #line) -> BoardChange? {
        board.apply(t)
    }

    func testWaitingHeldAndCompletion() throws {
        apply(log.step(1, .idle))
        log.advance(2)
        apply(log.step(1, .queued, queue: "sales"))
        XCTAssertEqual(board.waiting(in: "sales").map(\.id), [1])
        log.advance(12)
        XCTAssertEqual(board.longestWait(in: "sales", now: log.clock), 12, accuracy: 0.001)
        apply(log.step(1, .deliveryPending, agent: "ann", queue: "sales"))
        log.advance(1)
        apply(log.step(1, .delivered, agent: "ann", queue: "sales"))
        XCTAssertTrue(board.waiting(in: "sales").isEmpty)
        XCTAssertEqual(board.agentStatuses.first { $0.agent == "ann" }?.activity, .talking)
        XCTAssertEqual(board.agentStatuses.first { $0.agent == "bob" }?.activity, .loggedOut,
                       "an agent who never logged in is not available")
        log.advance(30)
        apply(log.step(1, .held, agent: "ann", queue: "sales", heldBy: "ann"))
        XCTAssertEqual(board.held.map(\.heldBy), ["ann"])
        XCTAssertEqual(board.agentStatuses.first { $0.agent == "ann" }?.activity, .holding)
        log.advance(10)
        apply(log.step(1, .delivered, agent: "ann", queue: "sales"))
        XCTAssertTrue(board.held.isEmpty)
        log.advance(20)
        apply(log.step(1, .afterCallWork, agent: "ann", queue: "sales"))
        XCTAssertEqual(board.agentStatuses.first { $0.agent == "ann" }?.activity, .wrapUp)
        log.advance(5)
        let change = try XCTUnwrap(apply(log.step(1, .completed, agent: "ann", queue: "sales")))
        XCTAssertNil(change.interaction)
        XCTAssertNil(board.interactions[1])
        XCTAssertEqual(board.agentStatuses.first { $0.agent == "ann" }?.activity, .loggedOut, "the agent's work ended")
    }

    /// An unreadable row changes nothing but moves the board's position past it.
    func testUnreadableRowMovesThePositionOnly() {
        apply(log.step(1, .idle))
        let before = board.interactions
        let position = LogPosition(orderTx: 100, id: 999)
        XCTAssertNil(board.apply(LogRow.unreadable(position: position, interactionID: 1, reason: "at is 'Infinity'")))
        XCTAssertEqual(board.interactions, before)
        XCTAssertEqual(board.position, position)
    }

    func testReplayedTransitionsAreIgnored() {
        let a = log.step(7, .idle)
        let b = log.step(7, .queued, queue: "sales")
        XCTAssertNotNil(apply(a))
        XCTAssertNotNil(apply(b))
        XCTAssertNil(apply(a))
        XCTAssertNil(apply(b))
        XCTAssertEqual(board.interactions[7]?.version, 2)
        // A later step of an interaction the board never saw created is not invented.
        var other = LogBuilder()
        _ = other.step(9, .idle)
        XCTAssertNil(apply(other.step(9, .queued, queue: "sales")))
        XCTAssertNil(board.interactions[9])
    }

    func testTransferInProgressIsNotAWaitingCaller() throws {
        apply(log.step(1, .idle))
        apply(log.step(1, .queued, queue: "sales"))
        apply(log.step(1, .deliveryPending, agent: "ann", queue: "sales"))
        apply(log.step(1, .delivered, agent: "ann", queue: "sales"))
        apply(log.step(2, .idle, cause: .transferCreated, transferFrom: 1))
        apply(log.step(1, .queued, agent: "ann", queue: "sales", cause: .transferStarted,
                       transfer: TransferInfo(newInteraction: 2, kind: .agent, target: "bob")))
        XCTAssertTrue(board.waiting(in: "sales").isEmpty)
        XCTAssertEqual(board.transfersInProgress.map(\.id), [1])
        XCTAssertEqual(board.interactions[2]?.transferFrom, 1)
        // Failure: the new interaction completes, the original returns to its agent.
        let failed = try XCTUnwrap(apply(log.step(2, .completed)))
        XCTAssertNil(failed.interaction)
        XCTAssertNil(board.interactions[2])
        apply(log.step(1, .delivered, agent: "ann", queue: "sales", cause: .transferFailed))
        XCTAssertNil(board.interactions[1]?.transfer)
        XCTAssertEqual(board.interactions[1]?.state, .delivered)
    }
}
