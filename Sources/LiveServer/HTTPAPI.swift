import Foundation
import InteractionModel
import InteractionStore
import LWS

/// The HTTP API (docs/openapi.json): reads answered from the board on the loop, everything that
/// needs PostgreSQL on a database worker.
extension LiveService {
    /// The principal of a request, checked against its endpoint (nil: a public path). Only the
    /// Authorization header carries a token: a URL ends up in logs.
    func principal(_ head: HTTPRequestHead) throws -> Principal? {
        guard let endpoint = Endpoint.of(method: head.method, path: head.path) else { return nil }
        var secret: String?
        if let header = head.headers["authorization"] {
            let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.first?.lowercased() == "bearer" { secret = parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : "" }
        }
        switch state.access.authorize(secret, loopback: isLoopback(head.peer), for: endpoint) {
        case .success(let p): return p
        case .failure(let refusal): throw refusal.apiError
        }
    }

    /// Writes take JSON only: a form post or a `no-cors` fetch from another site cannot send it.
    func checkContentType(_ head: HTTPRequestHead) throws {
        guard ["POST", "PUT", "PATCH"].contains(head.method), Endpoint.of(method: head.method, path: head.path) != nil else { return }
        let type = head.headers["content-type"]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            throw APIError(status: 415, code: "unsupported_media_type",
                           message: "a write must be sent as application/json, not \(head.headers["content-type"].map { "\"\($0.prefix(60))\"" } ?? "without a Content-Type")",
                           hint: "send Content-Type: application/json")
        }
    }

    func route(_ request: HTTPRequest, server: LWSServer) throws {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let method = request.method
        func requireMethod(_ allowed: String) throws {
            guard method == allowed || (allowed == "GET" && method == "HEAD") else {
                throw APIError(status: 405, code: "method_not_allowed", message: "\(request.path) takes \(allowed), not \(method)")
            }
        }
        switch parts.first {
        case "healthz":
            try requireMethod("GET")
            server.respond(request.id, .json(status: state.databaseUp ? 200 : 503, healthText(server: server)))
            return
        case "metrics":
            try requireMethod("GET")
            var response = HTTPResponse.text(status: 200, metrics.render(state: state, clients: server.connectionCount))
            response.contentType = "text/plain; version=0.0.4; charset=utf-8"
            server.respond(request.id, response)
            return
        case "api":
            break
        default:
            throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)")
        }
        let rest = Array(parts.dropFirst())
        if rest == ["openapi.json"] {
            try requireMethod("GET")
            server.respond(request.id, .json(status: 200, configuration.openAPIDocument))
            return
        }
        guard let principal = try principal(request.head) else { throw APIError.unauthorized }
        let query = request.query
        switch (method, rest.count, rest.first) {
        case ("GET", 1, "board"):
            // Encoded off the loop like every snapshot: a large board takes tens of milliseconds.
            let filter = principal.narrow(query["queues"].map { Set($0.split(separator: ",").map(String.init)) })
            let job = state.snapshotJob(filters: [filter], now: Date())
            let id = request.id
            let mailbox = server.mailbox
            let bound = LoopBound(server, server: server)
            snapshotQueue.async {
                let text = job.encode(filter)
                mailbox.post { bound.value.respond(id, .json(status: 200, text)) }
            }
        case ("GET", 1, "history"):
            let limit = try query["limit"].map { text -> Int in
                guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit must be 1 to 1000") }
                return n
            } ?? 50
            let queue = query["queue"]
            if let queue, !principal.sees(queue: queue) {
                throw APIError(status: 403, code: "forbidden", message: "that queue is outside this token's queues")
            }
            let scope = principal.queues.map { Array($0).sorted() }
            database(request) { store in Wire.history(try store.history(limit: limit, queue: queue, queues: scope)) }
        case ("GET", 2, "interactions"), ("GET", 3, "interactions"):
            let id = try interactionID(rest[1])
            guard rest.count == 2 || rest[2] == "path" else {
                throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)")
            }
            let live = state.board.interactions[id]
            let withLive = rest.count == 2
            database(request) { store in
                // A token of some queues sees a path only when it stays in them (a step not yet
                // routed names no queue); otherwise it is as unknown as an id that does not exist.
                guard let path = try store.callerPath(of: id),
                      principal.queues == nil || (path.interactions.allSatisfy { $0.queue == nil || principal.sees(queue: $0.queue) }
                                                  && path.interactions.contains { principal.sees(queue: $0.queue) }) else {
                    throw APIError(status: 404, code: "unknown_interaction", message: "unknown interaction \(id)")
                }
                if !withLive { return Wire.path(path) }
                // The path is read after the board was: a completion the tailer has not applied
                // yet is already in it, and a completed interaction is not live.
                let completed = path.interactions.contains { $0.id == id && $0.state == .completed }
                let live = completed ? nil : live
                var w = JSONWriter()
                w.object { o in
                    o.field("interaction") { w in if let live { Wire.interaction(live, into: &w) } else { w.raw("null") } }
                    o.field("path", raw: Wire.path(path))
                }
                return w.text
            }
        case ("POST", 1, "interactions"):
            let (body, key) = try writeBody(request)
            let op = try IngestOperation.parse(body, op: "create")
            ingest(request, [op], status: 201, key: key, principal: principal)
        case ("POST", 3, "interactions") where rest[2] == "transitions":
            let (body, key) = try writeBody(request)
            let op = try IngestOperation.parse(body, op: "transition", interaction: try interactionID(rest[1]))
            ingest(request, [op], status: 200, key: key, principal: principal)
        case ("POST", 3, "interactions") where rest[2] == "transfers":
            let (body, key) = try writeBody(request)
            let op = try IngestOperation.parse(body, op: "transfer", interaction: try interactionID(rest[1]))
            ingest(request, [op], status: 201, key: key, principal: principal)
        case ("POST", 1, "batch"):
            let (body, key) = try writeBody(request)
            ingest(request, try IngestOperation.parseBatch(body), status: 200, batch: true, key: key, principal: principal)
        case ("POST", 1, "queues"):
            let (body, key) = try writeBody(request)
            var f = Fields(body)
            let q = QueueConfig(
                id: try f.string("id", required: true, maxLength: 64) ?? "", name: try f.string("name", required: true) ?? "",
                serviceLevelSeconds: Int(try f.int("serviceLevelSeconds", range: 1...86400) ?? 20),
                serviceLevelTargetPercent: Int(try f.int("serviceLevelTargetPercent", range: 1...100) ?? 80),
                waitWarningSeconds: Int(try f.int("waitWarningSeconds", range: 1...86400) ?? 30),
                waitAlarmSeconds: Int(try f.int("waitAlarmSeconds", range: 1...86400) ?? 60),
                holdAlarmSeconds: Int(try f.int("holdAlarmSeconds", range: 1...86400) ?? 120),
                abandonsInDenominator: try f.bool("abandonsInDenominator") ?? true,
                excludeShortAbandons: try f.bool("excludeShortAbandons") ?? true,
                shortAbandonSeconds: Int(try f.int("shortAbandonSeconds", range: 1...3600) ?? 5),
                abandonWarningPercent: try f.int("abandonWarningPercent", range: 1...100).map { Int($0) },
                abandonAlarmPercent: try f.int("abandonAlarmPercent", range: 1...100).map { Int($0) })
            try f.finish()
            if let warning = q.abandonWarningPercent, let alarm = q.abandonAlarmPercent, warning > alarm {
                throw APIError.badRequest(
                    "abandonWarningPercent (\(warning)) is above abandonAlarmPercent (\(alarm)): the warning must be at most the alarm")
            }
            write(request, status: 200, key: key, principal: principal) { store in
                try store.upsertQueue(q)
                return "{\"id\":" + jsonString(q.id) + "}"
            }
        case (_, _, "alerts"):
            try routeAlerts(request, rest: rest, principal: principal)
        case ("POST", 1, "agents"):
            let (body, key) = try writeBody(request)
            var f = Fields(body)
            let a = AgentConfig(id: try f.string("id", required: true, maxLength: 64) ?? "", name: try f.string("name", required: true) ?? "",
                                queues: try f.strings("queues") ?? [], isVoiceApplication: try f.bool("voiceApplication") ?? false)
            try f.finish()
            write(request, status: 200, key: key, principal: principal) { store in
                try store.upsertAgent(a)
                return "{\"id\":" + jsonString(a.id) + "}"
            }
        default:
            if try routePresenceAndFigures(request, rest, server: server, principal: principal) { return }
            if ["board", "history", "interactions", "batch", "queues", "agents"].contains(rest.first ?? "") {
                throw APIError(status: 405, code: "method_not_allowed", message: "\(method) is not allowed on \(request.path)")
            }
            throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)", hint: "see /api/openapi.json")
        }
    }

    func healthText(server: LWSServer) -> String {
        let now = Date()
        var w = JSONWriter()
        w.object { o in
            o.field("status", string: state.databaseUp ? "ok" : "degraded")
            o.field("database", string: state.databaseUp ? "up" : "down")
            o.field("position", string: state.flushedPosition.description)
            o.field("secondsSinceTailerContact", double: now.timeIntervalSince(state.lastTailerContact))
            o.field("liveInteractions", int: state.board.interactions.count)
            o.field("clients", int: server.connectionCount)
            o.field("queuedBytes", int: server.totalQueuedBytes)
            o.field("skippedRows", int: state.counters.skippedRows)
            o.field("lastSkipped") { w in
                guard let s = state.lastSkipped else { w.raw("null"); return }
                w.object { o in
                    o.field("position", string: s.position.description)
                    o.field("interaction", int: s.interaction)
                    o.field("reason", string: s.reason)
                    o.field("at", date: s.at)
                }
            }
            o.field("uptimeSeconds", double: now.timeIntervalSince(startedAt))
        }
        return w.text
    }

    private func interactionID(_ text: String) throws -> Int64 {
        guard let id = Int64(text), id > 0 else {
            throw APIError(status: 400, code: "bad_request", message: "\"\(text.prefix(40))\" is not an interaction id")
        }
        return id
    }

    /// Runs `job` (a read) on a database worker and answers with its JSON (or its error).
    func database(_ request: HTTPRequest, status: Int = 200, _ job: @escaping (InteractionStore) throws -> String) {
        respondFromPool(request, replayable: true) { store in .json(status: status, try job(store)) }
    }

    /// Runs `job` on a database worker and answers with its response (or its error). A job that
    /// is not `replayable` never runs twice (see `DatabasePool.submit`).
    func respondFromPool(_ request: HTTPRequest, replayable: Bool, _ job: @escaping (InteractionStore) throws -> HTTPResponse) {
        guard let server else { return }
        let id = request.id
        let mailbox = server.mailbox
        let bound = LoopBound(server, server: server)
        let accepted = pool.submit(job, replayable: replayable) { result in
            mailbox.post {
                switch result {
                case .success(let response): bound.value.respond(id, response)
                case .failure(let error): bound.value.respond(id, APIError(error).response)
                }
            }
        }
        if !accepted {
            server.respond(id, APIError(status: 503, code: "busy", message: "too many requests waiting for the database",
                                        hint: "retry shortly").response)
        }
    }

    func ingest(_ request: HTTPRequest, _ operations: [IngestOperation], status: Int, batch: Bool = false,
                key: String?, principal: Principal) {
        state.countIngest(operations.count)
        write(request, status: status, key: key, principal: principal, cost: operations.count) { store in
            func run() throws -> [IngestResult] {
                var results: [IngestResult] = []
                var created: [Int64] = []
                for (index, op) in operations.enumerated() {
                    do {
                        let r = try op.perform(store, results: created)
                        results.append(r)
                        created.append(r.id)
                    } catch StoreError.unavailable(let message) {
                        // The pool decides what a broken connection means for a write.
                        throw StoreError.unavailable(message)
                    } catch {
                        throw APIError(error, index: batch ? index : nil)
                    }
                }
                return results
            }
            let results = operations.count > 1 ? try store.transaction(run) : try run()
            var w = JSONWriter()
            func one(_ o: inout ObjectWriter, _ op: IngestOperation, _ r: IngestResult) {
                switch op {
                case .create: o.field("id", int: r.id)
                case .transfer(let ref, _, _, _, _):
                    o.field("id", int: r.id)
                    if case .id(let original) = ref { o.field("original", int: original) }
                case .transition:
                    o.field("id", int: r.id)
                    if let t = r.transition { o.field("transition") { Wire.transition(t, into: &$0) } }
                case .presence(let agent, _, _, _):
                    o.field("agent", string: agent)
                    if let p = r.presence { o.field("change") { Wire.presenceChange(p, into: &$0) } }
                }
            }
            if batch {
                w.object { o in
                    o.field("results") { w in
                        w.array(zip(operations, results)) { w, pair in w.object { o in one(&o, pair.0, pair.1) } }
                    }
                }
            } else if let first = results.first {
                w.object { o in one(&o, operations[0], first) }
            }
            return w.text
        }
    }
}
