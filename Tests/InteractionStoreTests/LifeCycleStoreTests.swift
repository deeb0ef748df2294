import Foundation
import InteractionModel
import InteractionStore
import XCTest

final class LifeCycleStoreTests: StoreTestCase {
    /// The SQL rule table and the Swift one agree on all 64 pairs.
    func testSQLAndSwiftRulesAgree() throws {
        let r = try store.connection.query("select from_state::text, to_state::text, kind from sightline.transition_rules")
        var sql: [String: String] = [:]
        for i in 0..<r.rowCount { sql["\(r.string(i, 0)!)>\(r.string(i, 1)!)"] = r.string(i, 2)! }
        for from in InteractionState.allCases {
            for to in InteractionState.allCases {
                XCTAssertEqual(sql["\(from.rawValue)>\(to.rawValue)"], LifeCycle.kind(from: from, to: to)?.rawValue,
                               "\(from) -> \(to)")
            }
        }
        XCTAssertEqual(sql.count, 17)
    }

    /// Every (from, to) pair through the real functions: writer steps succeed, every other one
    /// is refused with its own SQLSTATE and changes nothing.
    func testEveryPairOfStates() throws {
        for from in InteractionState.allCases {
            for to in InteractionState.allCases {
                let id = try interaction(in: from)
                let agent: String? = (to == .deliveryPending || to == .held || from == .held) ? ann : nil
                let queueArg: String? = to == .queued ? queue : nil
                switch LifeCycle.kind(from: from, to: to) {
                case .writer:
                    let t = try store.transition(id, to: to, agent: agent, queue: queueArg)
                    XCTAssertEqual(t.from, from)
                    XCTAssertEqual(t.to, to)
                    XCTAssertEqual(try states(of: id).last, to, "\(from) -> \(to)")
                case .transferBegin:
                    try assertRefused(.transferRule, id) { try store.transition(id, to: to, agent: agent, queue: queueArg) }
                case .transferOutcome, nil:
                    try assertRefused(.illegalTransition, id) { try store.transition(id, to: to, agent: agent, queue: queueArg) }
                }
            }
        }
    }

    func testOnlyTheHoldingAgentTakesACallOffHold() throws {
        let id = try interaction(in: .held)
        try assertRefused(.notHoldingAgent, id) { try store.transition(id, to: .delivered, agent: bob) }
        try assertRefused(.agentRequired, id) { try store.transition(id, to: .delivered) }
        try store.transition(id, to: .delivered, agent: ann)
        XCTAssertEqual(try states(of: id).last, .delivered)
    }

    func testTheAgentIsFixedAtAcceptance() throws {
        let id = try interaction(in: .deliveryPending)
        try assertRefused(.agentMismatch, id) { try store.transition(id, to: .delivered, agent: bob) }
        try store.transition(id, to: .delivered, agent: ann)
        try assertRefused(.agentMismatch, id) { try store.transition(id, to: .held, agent: bob) }
        try assertRefused(.agentMismatch, id) { try store.transition(id, to: .afterCallWork, agent: bob) }
        let r = try store.connection.query("select agent_id from sightline.interactions where id = $1", [String(id)])
        XCTAssertEqual(r.string(0, 0), ann)
        // No agent can be named before one accepts.
        let waiting = try interaction(in: .idle)
        try assertRefused(.agentMismatch, waiting) { try store.transition(waiting, to: .queued, agent: ann, queue: queue) }
        let queued = try interaction(in: .queued)
        try assertRefused(.agentRequired, queued) { try store.transition(queued, to: .deliveryPending) }
    }

    func testZeroAgentAbandonFromEachStateBeforeAnAgent() throws {
        for state in [InteractionState.idle, .dataCollection, .queued, .deliveryPending] {
            let id = try interaction(in: state)
            try store.transition(id, to: .completed)
            let stats = try XCTUnwrap(store.statistics(of: id))
            XCTAssertTrue(stats.abandoned, "\(state)")
            XCTAssertEqual(stats.abandonedFrom, state)
            XCTAssertFalse(stats.answered)
            let r = try store.connection.query("select agent_id from sightline.interactions where id = $1", [String(id)])
            XCTAssertEqual(r.string(0, 0), state == .deliveryPending ? ann : nil)
        }
    }

    func testTransferSuccessAndFailureAsTheSeedSays() throws {
        // 1. The original enters queued; 2. a new interaction is created in idle, linked.
        let original = try interaction(in: .delivered)
        let new = try store.beginTransfer(original, kind: "agent", target: bob)
        XCTAssertEqual(try states(of: original).suffix(2), [.delivered, .queued])
        XCTAssertEqual(try states(of: new), [.idle])
        XCTAssertEqual(try store.transitions(of: new).first?.transferFrom, original)
        // The original's next state is not the writer's choice.
        try assertRefused(.transferRule, original) { try store.transition(original, to: .afterCallWork) }
        try assertRefused(.transferRule, original) { try store.transition(original, to: .completed) }
        // 3./4. Routed and accepted: delivery pending; 5. answered: delivered;
        try store.transition(new, to: .deliveryPending, agent: bob)
        try store.transition(new, to: .delivered, agent: bob)
        // 6. the original enters after-call work (in the same transaction);
        XCTAssertEqual(try states(of: original).suffix(3), [.delivered, .queued, .afterCallWork])
        XCTAssertEqual(try store.transitions(of: original).last?.cause, .transferSucceeded)
        // 7./8. its agent finishes wrap-up: completed.
        try store.transition(original, to: .completed, agent: ann)
        XCTAssertEqual(try store.statistics(of: original)?.transferred, true)

        // Failure: the new interaction completes, the original returns to delivered with its agent.
        let second = try interaction(in: .delivered)
        let leg = try store.beginTransfer(second, kind: "queue", target: queue)
        XCTAssertEqual(try states(of: leg), [.idle, .queued], "a queue transfer's new interaction enters the queue by itself")
        try store.transition(leg, to: .completed)
        XCTAssertEqual(try states(of: second).suffix(3), [.delivered, .queued, .delivered])
        let back = try XCTUnwrap(try store.transitions(of: second).last)
        XCTAssertEqual(back.cause, .transferFailed)
        XCTAssertEqual(back.agent, ann)
        let legStats = try XCTUnwrap(store.statistics(of: leg))
        XCTAssertTrue(legStats.failedTransferLeg)
        XCTAssertFalse(legStats.abandoned)
        // The caller is with the original agent again: hold works for ann only.
        try store.transition(second, to: .held, agent: ann)

        // Transfers start only from delivered, to something that exists.
        let held = try interaction(in: .held)
        try assertRefused(.illegalTransition, held) { _ = try store.beginTransfer(held, kind: "agent", target: bob) }
        let talking = try interaction(in: .delivered)
        try assertRefused(.unknownAgent, talking) { _ = try store.beginTransfer(talking, kind: "agent", target: "nobody-\(talking)") }
        try assertRefused(.unknownQueue, talking) { _ = try store.beginTransfer(talking, kind: "queue", target: "nowhere-\(talking)") }
        try assertRefused(.badArgument, talking, namesInteraction: false) {
            _ = try store.beginTransfer(talking, kind: "fax", target: bob)
        }
        try assertRefused(.agentMismatch, talking) { _ = try store.beginTransfer(talking, kind: "agent", target: bob, agent: bob) }
    }

    func testVoiceApplicationTransfer() throws {
        let original = try interaction(in: .delivered)
        let new = try store.beginTransfer(original, kind: "voice_application", target: ivr)
        try store.transition(new, to: .deliveryPending, agent: ivr)
        try store.transition(new, to: .delivered, agent: ivr)
        XCTAssertEqual(try states(of: original).last, .afterCallWork)
    }

    /// The path from the first, a middle and the last interaction of a three-transfer chain is
    /// the same whole path.
    func testPathFromAnyInteractionOfAChain() throws {
        var ids = [try interaction(in: .delivered)]
        let agents = [bob, ann, bob]
        for agent in agents {
            let new = try store.beginTransfer(ids.last!, kind: "agent", target: agent)
            try store.transition(new, to: .deliveryPending, agent: agent)
            try store.transition(new, to: .delivered, agent: agent)
            ids.append(new)
        }
        let paths = try [ids[0], ids[2], ids[3]].map { try XCTUnwrap(store.callerPath(of: $0)) }
        XCTAssertEqual(paths[0], paths[1])
        XCTAssertEqual(paths[1], paths[2])
        let path = paths[0]
        XCTAssertEqual(path.root, ids[0])
        XCTAssertEqual(path.interactions.map(\.id), ids)
        XCTAssertEqual(path.interactions.map(\.transferFrom), [nil, ids[0], ids[1], ids[2]])
        XCTAssertEqual(path.links.map(\.from), Array(ids.dropLast()))
        XCTAssertEqual(path.links.map(\.to), Array(ids.dropFirst()))
        XCTAssertEqual(Set(path.links.map(\.status)), ["succeeded"])
        XCTAssertEqual(path.interactions.map(\.agent), [ann] + agents)
        XCTAssertEqual(path.interactions[0].transitions.map(\.to),
                       [.idle, .queued, .deliveryPending, .delivered, .queued, .afterCallWork])
        XCTAssertNil(try store.callerPath(of: -1))
    }

    func testBadInputIsRefusedAndChangesNothing() throws {
        let id = try interaction(in: .queued)
        XCTAssertThrowsError(try store.transition(987_654_321_000, to: .completed)) { error in
            guard case .refused(.unknownInteraction, _, _) = error as? StoreError else { return XCTFail("\(error)") }
        }
        try assertRefused(.unknownState, id, namesInteraction: false) { try store.transition(id, to: "on_a_break") }
        try assertRefused(.agentRequired, id) { try store.transition(id, to: .deliveryPending) }
        try assertRefused(.unknownAgent, id) { try store.transition(id, to: .deliveryPending, agent: "ghost-\(id)") }
        try assertRefused(.queueFixed, id) { try store.transition(id, to: .deliveryPending, agent: ann, queue: "elsewhere") }
        try assertRefused(.timeBeforeLastTransition, id) {
            try store.transition(id, to: .completed, at: Date(timeIntervalSinceNow: -3600))
        }
        let fresh = try interaction(in: .idle)
        try assertRefused(.queueRequired, fresh) { try store.transition(fresh, to: .queued) }
        try assertRefused(.unknownQueue, fresh) { try store.transition(fresh, to: .queued, queue: "nowhere-\(fresh)") }
        XCTAssertThrowsError(try store.createInteraction(callID: "")) { error in
            guard case .refused(.badArgument, _, _) = error as? StoreError else { return XCTFail("\(error)") }
        }
    }
}
