import Foundation
import InteractionModel
import InteractionStore
import Simulation
import XCTest

/// A deterministic simulated run (40 minutes of traffic two days ago, in simulated time): the
/// interval and day figures of `sightline.figures` equal figures this test counts by itself from
/// the raw logs (transitions and presence changes), for every queue and agent, with transfers,
/// failed transfers, holds, abandons and breaks in it.
final class SimulatedFiguresTests: StoreTestCase {
    struct Step {
        var interaction: Int64
        var to: String
        var cause: String
        var at: Double
        var agent: String?
        var queue: String?
        var related: Int64?
    }

    struct PresenceRow {
        var agent: String
        var to: String
        var reason: String?
        var at: Double
    }

    /// Counted here from the steps of one interaction, by the definitions of docs/protocol.md.
    struct Facts {
        var queue: String?
        var agent: String?
        var queuedAt: Double?
        var answeredAt: Double?
        var completedAt: Double?
        var talk = 0.0, hold = 0.0, acw = 0.0
        var holds = 0
        var failedLeg = false
        var wait: Double? {
            guard let q = queuedAt, let end = answeredAt ?? completedAt else { return nil }
            return end - q
        }
    }

    typealias Figures = [String: Any]

    func testFiguresOfADeterministicRunEqualFiguresCountedFromTheRawLogs() throws {
        let tag = UUID().uuidString.prefix(6).lowercased()
        let dayStart = floor(Date().timeIntervalSince1970 / 86400) * 86400 - 2 * 86400
        let start = dayStart + 10 * 3600 + 7 * 60     // 10:07 UTC, two days ago
        var options = TrafficSimulator.Options()
        options.idPrefix = "sf\(tag)-"
        options.callPrefix = "sf\(tag)"
        options.leftoverCallPrefix = "sf\(tag)-"
        options.seed = 20261126
        options.agents = 8
        options.arrivalsPerSecond = 0.13
        options.meanTalkSeconds = 35
        options.breakChance = 0.12
        options.startTime = Date(timeIntervalSince1970: start)
        let simulator = TrafficSimulator(store: store, options: options)
        var refusals: [String] = []
        simulator.onRefusal = { refusals.append("\($0)") }
        try simulator.setUp()
        simulator.runSimulated(seconds: 40 * 60)
        let c = simulator.counters
        XCTAssertEqual(c.refused, 0, "the simulator keeps the rules: \(refusals)")
        XCTAssertGreaterThan(c.transfers, 0)
        XCTAssertGreaterThan(c.failedTransfers, 0)
        XCTAssertGreaterThan(c.holds, 0)
        XCTAssertGreaterThan(c.abandons, 0)
        XCTAssertGreaterThan(c.breaks, 0)

        let queueIDs = simulator.queues.map(\.id)
        let agentIDs = (1...options.agents).map { "\(options.idPrefix)agent-\($0)" }
        let serviceLevel = Dictionary(uniqueKeysWithValues: simulator.queues.map { ($0.id, Double($0.serviceLevelSeconds)) })

        // The raw logs.
        let stepRows = try sql("""
            select t.interaction_id, t.to_state::text, t.cause, extract(epoch from t.at)::float8, t.agent_id, t.queue_id, t.related_id
              from sightline.transitions t join sightline.interactions i on i.id = t.interaction_id
             where i.call_id like $1 order by t.interaction_id, t.version
            """, [options.callPrefix + "-%"])
        var steps: [Int64: [Step]] = [:]
        for r in 0..<stepRows.rowCount {
            let s = Step(interaction: stepRows.int64(r, 0)!, to: stepRows.string(r, 1)!, cause: stepRows.string(r, 2)!,
                         at: Double(stepRows.string(r, 3)!)!, agent: stepRows.string(r, 4), queue: stepRows.string(r, 5),
                         related: stepRows.int64(r, 6))
            steps[s.interaction, default: []].append(s)
        }
        let presenceRows = try sql("""
            select agent_id, to_state::text, to_reason, extract(epoch from at)::float8 from sightline.presence_log
             where agent_id = any($1::text[]) order by agent_id, version
            """, ["{" + agentIDs.joined(separator: ",") + "}"])
        var presence: [String: [PresenceRow]] = [:]
        for r in 0..<presenceRows.rowCount {
            let p = PresenceRow(agent: presenceRows.string(r, 0)!, to: presenceRows.string(r, 1)!, reason: presenceRows.string(r, 2),
                                at: Double(presenceRows.string(r, 3)!)!)
            presence[p.agent, default: []].append(p)
        }
        XCTAssertGreaterThan(steps.count, 100)

        // Facts per interaction.
        var failedLegs = Set<Int64>()
        for s in steps.values.joined() where s.cause == "transfer_failed" { if let r = s.related { failedLegs.insert(r) } }
        var facts: [Int64: Facts] = [:]
        for (id, list) in steps {
            var f = Facts()
            f.queue = list.last?.queue
            f.agent = list.last?.agent
            f.failedLeg = failedLegs.contains(id)
            for (n, s) in list.enumerated() {
                let next = n + 1 < list.count ? list[n + 1].at : nil
                if s.to == "queued" && (s.cause == "writer" || s.cause == "transfer_queued") && f.queuedAt == nil { f.queuedAt = s.at }
                if s.to == "delivered" && f.answeredAt == nil { f.answeredAt = s.at }
                if s.to == "completed" { f.completedAt = s.at }
                if s.to == "held" { f.holds += 1 }
                guard let next else { continue }
                if s.to == "delivered" || (s.to == "queued" && s.cause == "transfer_started") { f.talk += next - s.at }
                if s.to == "held" { f.hold += next - s.at }
                if s.to == "after_call_work" { f.acw += next - s.at }
            }
            facts[id] = f
        }

        // Nobody not ready or logged out was given a call from a queue.
        for (id, list) in steps {
            for s in list where s.to == "delivery_pending" && facts[id]?.queuedAt != nil {
                let agent = try XCTUnwrap(s.agent)
                let before = (presence[agent] ?? []).last { $0.at <= s.at }
                XCTAssertEqual(before?.to, "ready", "interaction \(id) accepted by \(agent) while \(before?.to ?? "logged_out")")
            }
        }

        func counted(_ from: Double, _ to: Double) -> (queues: [String: Figures], agents: [String: Figures]) {
            func inPeriod(_ t: Double?) -> Bool { t.map { $0 >= from && $0 < to } ?? false }
            var queues: [String: Figures] = [:]
            for q in queueIDs {
                let mine = facts.values.filter { $0.queue == q }
                let answered = mine.filter { $0.queuedAt != nil && inPeriod($0.answeredAt) }
                let abandoned = mine.filter { $0.queuedAt != nil && $0.answeredAt == nil && !$0.failedLeg && inPeriod($0.completedAt) }
                let within = answered.filter { $0.wait! <= serviceLevel[q]! }.count
                let short = abandoned.filter { $0.wait! < 5 }.count
                let offered = answered.count + abandoned.count
                let answerWait = answered.reduce(0) { $0 + $1.wait! }
                var f = work(mine, inPeriod)
                let slBase = answered.count + abandoned.count - short
                f["offered"] = offered
                f["answered"] = answered.count
                f["answeredWithinServiceLevel"] = within
                f["abandoned"] = abandoned.count
                f["shortAbandoned"] = short
                f["serviceLevelPercent"] = opt(slBase > 0 ? 100.0 * Double(within) / Double(slBase) : nil)
                f["abandonPercent"] = opt(offered - short > 0 ? 100.0 * Double(abandoned.count - short) / Double(offered - short) : nil)
                f["answerWaitSeconds"] = answerWait
                f["asaSeconds"] = opt(answered.isEmpty ? nil : answerWait / Double(answered.count))
                f["longestWaitSeconds"] = opt((answered + abandoned).map { $0.wait! }.max())
                f["transfers"] = transferCount(ofQueue: q, "transfer_succeeded", inPeriod)
                f["transfersFailed"] = transferCount(ofQueue: q, "transfer_failed", inPeriod)
                queues[q] = f
            }
            var agents: [String: Figures] = [:]
            for a in agentIDs {
                let mine = facts.values.filter { $0.agent == a }
                var f = work(mine, inPeriod)
                f["answered"] = mine.filter { inPeriod($0.answeredAt) }.count
                f["transfers"] = transferCount(ofAgent: a, "transfer_succeeded", inPeriod)
                f["transfersFailed"] = transferCount(ofAgent: a, "transfer_failed", inPeriod)
                // Presence and handling by overlap with [from, to) (the period is over: no "now").
                let rows = presence[a] ?? []
                var spans: [(state: String, reason: String?, from: Double, to: Double)] = []
                for (n, p) in rows.enumerated() {
                    let end = n + 1 < rows.count ? rows[n + 1].at : to
                    let (s, e) = (max(p.at, from), min(end, to))
                    if e > s { spans.append((p.to, p.reason, s, e)) }
                }
                let ready = spans.filter { $0.state == "ready" }.map { ($0.from, $0.to) }
                let readySeconds = ready.reduce(0) { $0 + $1.1 - $1.0 }
                let notReady = spans.filter { $0.state == "not_ready" }
                var reasons: [String: Double] = [:]
                for s in notReady { reasons[s.reason!, default: 0] += s.to - s.from }
                let handling = merged(mine.compactMap { f -> (Double, Double)? in
                    guard let answered = f.answeredAt else { return nil }
                    let (s, e) = (max(answered, from), min(f.completedAt ?? to, to))
                    return e > s ? (s, e) : nil
                })
                let interacting = overlap(handling, ready)
                f["loggedInSeconds"] = spans.filter { $0.state != "logged_out" }.reduce(0) { $0 + $1.to - $1.from }
                f["readySeconds"] = readySeconds
                f["notReadySeconds"] = notReady.reduce(0) { $0 + $1.to - $1.from }
                f["notReadyReasons"] = reasons.filter { $0.value > 0 }
                f["interactingReadySeconds"] = interacting
                f["occupancyPercent"] = opt(readySeconds > 0 ? 100 * interacting / readySeconds : nil)
                agents[a] = f
            }
            return (queues, agents)
        }

        func work(_ list: [Facts], _ inPeriod: (Double?) -> Bool) -> Figures {
            let done = list.filter { $0.answeredAt != nil && inPeriod($0.completedAt) }
            let talk = done.reduce(0) { $0 + $1.talk }, hold = done.reduce(0) { $0 + $1.hold }, acw = done.reduce(0) { $0 + $1.acw }
            let held = done.filter { $0.holds > 0 }.count
            return ["handled": done.count, "talkSeconds": talk, "holdSeconds": hold, "afterCallWorkSeconds": acw,
                    "handleSeconds": talk + hold + acw, "ahtSeconds": opt(done.isEmpty ? nil : (talk + hold + acw) / Double(done.count)),
                    "held": held, "averageHoldSeconds": opt(held > 0 ? hold / Double(held) : nil)]
        }

        func transferSteps(_ cause: String, _ inPeriod: (Double?) -> Bool) -> [Step] {
            steps.values.joined().filter { $0.cause == cause && inPeriod($0.at) }
        }
        func transferCount(ofQueue q: String, _ cause: String, _ inPeriod: (Double?) -> Bool) -> Int {
            transferSteps(cause, inPeriod).filter { facts[$0.interaction]?.queue == q }.count
        }
        func transferCount(ofAgent a: String, _ cause: String, _ inPeriod: (Double?) -> Bool) -> Int {
            transferSteps(cause, inPeriod).filter { facts[$0.interaction]?.agent == a }.count
        }

        // Compare with the store, every period of both granularities.
        var compared = 0
        var totals = (offered: 0, transfers: 0, failed: 0, held: 0, abandoned: 0)
        for granularity in FigureGranularity.allCases {
            let history = try store.figures(from: Date(timeIntervalSince1970: start), to: Date(timeIntervalSince1970: start + 45 * 60),
                                            granularity: granularity, queues: queueIDs, agents: agentIDs)
            XCTAssertEqual(history.rows.count, (granularity == .day ? 1 : 4) * (queueIDs.count + agentIDs.count))
            for row in history.rows {
                let expected = counted(row.start.timeIntervalSince1970, row.end.timeIntervalSince1970)
                let want = try XCTUnwrap(row.scope == .queue ? expected.queues[row.id] : expected.agents[row.id])
                let got = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(row.json.utf8)) as? Figures)
                let place = "\(granularity) \(row.scope) \(row.id) \(row.start)"
                XCTAssertEqual(Set(got.keys).subtracting(want.keys), [], "figures this test does not count: \(place)")
                for (key, value) in want {
                    assertSame(got[key], value, "\(place) \(key)")
                    compared += 1
                }
                if granularity == .day && row.scope == .queue {
                    totals.offered += want["offered"] as! Int
                    totals.transfers += want["transfers"] as! Int
                    totals.failed += want["transfersFailed"] as! Int
                    totals.held += want["held"] as! Int
                    totals.abandoned += want["abandoned"] as! Int
                }
            }
        }
        XCTAssertGreaterThan(compared, 1000)
        XCTAssertGreaterThan(totals.offered, 50)
        XCTAssertGreaterThan(totals.transfers, 0, "the figures hold transfers")
        XCTAssertGreaterThan(totals.failed, 0, "and failed transfers")
        XCTAssertGreaterThan(totals.held, 0, "and holds")
        XCTAssertGreaterThan(totals.abandoned, 0, "and abandons")
    }

    /// Restarting the simulator on the same database ends what the earlier run left live (calls
    /// on the board, agents double-booked), through legal steps, before it starts.
    func testARestartEndsWhatTheEarlierRunLeftLive() throws {
        let tag = UUID().uuidString.prefix(6).lowercased()
        let start = floor(Date().timeIntervalSince1970 / 86400) * 86400 - 86400 + 9 * 3600
        var options = TrafficSimulator.Options()
        options.idPrefix = "rs\(tag)-"
        options.callPrefix = "rs\(tag)"
        options.leftoverCallPrefix = "rs\(tag)-"
        options.agents = 4
        options.arrivalsPerSecond = 0.2
        options.startTime = Date(timeIntervalSince1970: start)
        let first = TrafficSimulator(store: store, options: options)
        try first.setUp()
        first.runSimulated(seconds: 600)
        let queues = first.queues.map(\.id)
        let agents = (1...4).map { "\(options.idPrefix)agent-\($0)" } + [first.voiceApplication.id]
        // A caller still in the voice application: no queue, no agent yet, only the call id says whose.
        let inVoiceApp = try store.createInteraction(callID: "rs\(tag)-ivr", at: Date(timeIntervalSince1970: start + 600))
        try store.transition(inVoiceApp, to: .dataCollection, at: Date(timeIntervalSince1970: start + 600))
        let left = try store.liveInteractions(queues: queues, agents: agents, callPrefix: options.leftoverCallPrefix)
        XCTAssertTrue(left.contains { $0.id == inVoiceApp })
        XCTAssertGreaterThan(left.count, 2, "the first run left calls live")

        options.startTime = Date(timeIntervalSince1970: start + 3600)
        options.seed = 2
        let second = TrafficSimulator(store: store, options: options)
        try second.setUp()
        XCTAssertEqual(try store.liveInteractions(queues: queues, agents: agents, callPrefix: options.leftoverCallPrefix), [],
                       "nothing left live")
        XCTAssertGreaterThanOrEqual(second.counters.endedLeftovers, left.count - left.filter { $0.transferTo != nil }.count)
        second.runSimulated(seconds: 600)
        XCTAssertEqual(second.counters.refused, 0)
        let doubleBooked = try sql("""
            select agent_id from sightline.interactions
             where agent_id = any($1::text[]) and state in ('delivery_pending', 'delivered', 'held', 'after_call_work')
             group by agent_id having count(*) > 1
            """, ["{" + agents.dropLast().joined(separator: ",") + "}"])
        XCTAssertEqual(doubleBooked.rowCount, 0, "no agent on two calls")
    }

    func assertSame(_ got: Any?, _ want: Any?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        switch want {
        case nil, is NSNull:
            XCTAssertTrue(got == nil || got is NSNull, "\(what): \(String(describing: got)), expected null", file: file, line: line)
        case let w as Int:
            XCTAssertEqual((got as? NSNumber)?.doubleValue, Double(w), what, file: file, line: line)
        case let w as Double:
            guard let g = (got as? NSNumber)?.doubleValue else { return XCTFail("\(what): \(String(describing: got)), expected \(w)", file: file, line: line) }
            XCTAssertEqual(g, w, accuracy: 1e-6 * max(1, abs(w)), what, file: file, line: line)
        case let w as [String: Double]:
            let g = (got as? [String: NSNumber] ?? [:]).mapValues(\.doubleValue)
            XCTAssertEqual(Set(g.keys), Set(w.keys), what, file: file, line: line)
            for (k, v) in w { XCTAssertEqual(g[k] ?? -1, v, accuracy: 1e-6 * max(1, v), "\(what).\(k)", file: file, line: line) }
        default:
            XCTFail("\(what): cannot compare \(String(describing: want))", file: file, line: line)
        }
    }
}

/// A figure that may be null, as JSON has it.
private func opt(_ value: Double?) -> Any { value ?? NSNull() }

/// Disjoint, sorted union of intervals.
private func merged(_ spans: [(Double, Double)]) -> [(Double, Double)] {
    var out: [(Double, Double)] = []
    for s in spans.sorted(by: { $0.0 < $1.0 }) {
        if let last = out.last, s.0 <= last.1 { out[out.count - 1].1 = max(last.1, s.1) } else { out.append(s) }
    }
    return out
}

/// Seconds covered by both lists of disjoint intervals.
private func overlap(_ a: [(Double, Double)], _ b: [(Double, Double)]) -> Double {
    var total = 0.0
    for x in a { for y in b { total += max(0, min(x.1, y.1) - max(x.0, y.0)) } }
    return total
}
