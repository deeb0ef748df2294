import Foundation
import InteractionModel
import InteractionStore
import LWS

/// The HTTP API of queues, agents, presence and figures (docs/protocol.md, "HTTP API for
/// presence and figures"; docs/openapi.json). Everything runs on a database worker: reads give
/// back what was just written.
extension LiveService {
    /// Answers the request if it is one of these routes; false leaves it to `route`.
    func routePresenceAndFigures(_ request: HTTPRequest, _ rest: [String], server: LWSServer, principal: Principal) throws -> Bool {
        let method = request.method
        let isGet = method == "GET" || method == "HEAD"
        switch (rest.first, rest.count) {
        // Read from the store, not the board: what a client just wrote, it reads back.
        case ("queues", 1) where isGet:
            database(request) { store in
                let queues = try store.queues().filter { principal.sees(queue: $0.id) }
                var w = JSONWriter(capacity: 512 * max(1, queues.count))
                w.object { o in
                    o.field("queues") { w in w.array(queues) { w, q in Wire.queue(q, into: &w) } }
                }
                return w.text
            }
        case ("agents", 1) where isGet:
            database(request) { store in
                let (agents, presence) = try store.transaction { (try store.agents(), try store.presence()) }
                let visible = principal.visibleAgents(agents)
                var w = JSONWriter(capacity: 300 * max(1, visible.count))
                w.object { o in
                    o.field("agents") { w in
                        w.array(visible.sorted { $0.id < $1.id }) { w, a in
                            Wire.agent(a, presence: a.isVoiceApplication ? nil : presence[a.id] ?? .initial, into: &w)
                        }
                    }
                }
                return w.text
            }
        case ("agents", 3) where rest[2] == "presence" && method == "POST":
            let agent = rest[1]
            let (body, key) = try writeBody(request)
            var f = Fields(body)
            let presenceState = try f.string("state", required: true)!
            let reason = try f.string("reason", maxLength: 64)
            let at = try f.time("at")
            try f.finish()
            state.countIngest(1)
            write(request, status: 200, key: key, principal: principal) { store in
                let change = try store.setPresence(agent: agent, state: presenceState, reason: reason, at: at)
                // Read in the same worker after the write: the presence as the store now has it.
                let now = try store.presence()[agent] ?? change.applied(to: .initial)
                var w = JSONWriter()
                w.object { o in
                    o.field("agent", string: agent)
                    o.field("presence") { Wire.presence(now, into: &$0) }
                    o.field("change") { Wire.presenceChange(change, into: &$0) }
                }
                return w.text
            }
        case ("presence-reasons", 1) where isGet:
            database(request) { store in
                var w = JSONWriter()
                let reasons = try store.presenceReasons()
                w.object { o in o.field("presenceReasons") { Wire.presenceReasons(reasons, into: &$0) } }
                return w.text
            }
        case ("presence-reasons", 1) where method == "POST":
            let (body, key) = try writeBody(request)
            var f = Fields(body)
            let reason = PresenceReason(code: try f.string("code", required: true, maxLength: 64)!, name: try f.string("name", required: true)!)
            try f.finish()
            write(request, status: 200, key: key, principal: principal) { store in
                try store.upsertPresenceReason(reason)
                return "{\"code\":" + jsonString(reason.code) + "}"
            }
        case ("figures", 1) where isGet:
            let query = FiguresQuery.parse(request.query)
            var q = try query.get()
            if let scope = principal.queues {
                // Only the token's queues, and only the agents of them.
                q.queues = Array(principal.narrow(q.queues.map(Set.init)) ?? scope).sorted()
                let visible = Set(principal.visibleAgents(state.board.agents.values).map(\.id))
                q.agents = (q.agents.map { $0.filter(visible.contains) } ?? Array(visible)).sorted()
            }
            database(request) { [q] store in
                let history = try store.figures(from: q.from, to: q.to, granularity: q.granularity, queues: q.queues, agents: q.agents)
                return Wire.figureHistory(history, granularity: q.granularity)
            }
        case ("presence-reasons", 1), ("figures", 1):
            throw APIError(status: 405, code: "method_not_allowed", message: "\(method) is not allowed on \(request.path)")
        case ("agents", 3) where rest[2] == "presence":
            throw APIError(status: 405, code: "method_not_allowed", message: "\(request.path) takes POST, not \(method)")
        default:
            return false
        }
        return true
    }
}

/// The parameters of `GET /api/figures`.
struct FiguresQuery: Sendable, Equatable {
    var granularity: FigureGranularity
    var from: Date?
    var to: Date?
    var queues: [String]?
    var agents: [String]?

    static func parse(_ query: QueryItems) -> Result<FiguresQuery, APIError> {
        func time(_ key: String) -> Result<Date?, APIError> {
            guard let text = query[key] else { return .success(nil) }
            guard let d = parseISOTime(text) else {
                return .failure(.badRequest("\(key) must be an ISO 8601 time such as 2026-11-24T10:15:00Z"))
            }
            return .success(d)
        }
        func list(_ key: String) -> [String]? {
            query[key].map { $0.split(separator: ",").map(String.init) }
        }
        let granularityText = query["granularity"] ?? "interval"
        guard let granularity = FigureGranularity(rawValue: granularityText) else {
            return .failure(.badRequest("granularity must be interval or day"))
        }
        return time("from").flatMap { from in
            time("to").flatMap { to in
                if let from, let to, to <= from { return .failure(.badRequest("to must be later than from")) }
                let queues = list("queues"), agents = list("agents")
                if (queues?.count ?? 0) > 1000 || (agents?.count ?? 0) > 1000 {
                    return .failure(.badRequest("at most 1000 queues and 1000 agents"))
                }
                return .success(FiguresQuery(granularity: granularity, from: from, to: to, queues: queues, agents: agents))
            }
        }
    }
}

extension Wire {
    /// FIGURES_HISTORY of docs/protocol.md: rows of `sightline.figures`, grouped by queue and
    /// agent, periods oldest first (the store's order).
    static func figureHistory(_ history: FigureHistory, granularity: FigureGranularity) -> String {
        let rows = history.rows
        var w = JSONWriter(capacity: 256 + rows.count * 700)
        func group(_ scope: FigureRow.Scope, _ o: inout ObjectWriter) {
            let mine = rows.filter { $0.scope == scope }
            var order: [String] = []
            var byID: [String: [FigureRow]] = [:]
            for r in mine {
                if byID[r.id] == nil { order.append(r.id) }
                byID[r.id, default: []].append(r)
            }
            o.field(scope == .queue ? "queues" : "agents") { w in
                w.object { o in
                    for id in order {
                        o.field(id) { w in
                            w.array(byID[id]!) { w, r in
                                w.object { o in
                                    o.field("start", date: r.start)
                                    o.field("end", date: r.end)
                                    o.field("figures", raw: r.json)
                                }
                            }
                        }
                    }
                }
            }
        }
        w.object { o in
            o.field("timeZone", string: history.timeZone)
            o.field("granularity", string: granularity.rawValue)
            o.field("asOf", date: history.asOf)
            o.field("from", date: rows.map(\.start).min())
            o.field("to", date: rows.map(\.end).max())
            group(.queue, &o)
            group(.agent, &o)
        }
        return w.text
    }
}
