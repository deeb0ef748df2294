import Foundation
import InteractionModel
import InteractionStore
@testable import LiveServer
import LWS
import XCTest

/// Who may see and do what, decided without sockets or a database.
final class AccessTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func stored(_ id: Int64, _ secret: String, _ role: String, queues: [String]? = nil,
                status: StoredToken.Status = .active) -> StoredToken {
        StoredToken(id: id, name: "token-\(id)", role: role, queues: queues, hashHex: TokenSecret.hashHex(secret),
                    createdAt: t0, status: status)
    }

    var table: TokenTable {
        TokenTable([stored(1, "ingest-secret", "ingest"), stored(2, "sales-secret", "supervisor", queues: ["sales"]),
                    stored(3, "wall-secret", "wallboard", queues: ["sales"]), stored(4, "admin-secret", "admin"),
                    stored(5, "old-secret", "supervisor", status: .expired), stored(6, "gone-secret", "admin", status: .revoked),
                    stored(7, "all-secret", "supervisor")],
                   bootstrapHash: nil)
    }

    func testEndpointsOfRequests() {
        XCTAssertNil(Endpoint.of(method: "GET", path: "/api/openapi.json"))
        XCTAssertNil(Endpoint.of(method: "GET", path: "/healthz"))
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/metrics"), .metrics)
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/api/board"), .board)
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/api/interactions/5/path"), .interaction)
        XCTAssertEqual(Endpoint.of(method: "POST", path: "/api/interactions/5/transitions"), .ingest)
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/api/interactions"), .ingest, "a GET of the collection is the writers' 405")
        XCTAssertEqual(Endpoint.of(method: "POST", path: "/api/batch"), .ingest)
        XCTAssertEqual(Endpoint.of(method: "POST", path: "/api/queues"), .configure)
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/api/nothing"), .other)
        XCTAssertEqual(Endpoint.of(method: "GET", path: "/api"), .other)
    }

    func testEachRoleGetsItsEndpointsOnly() {
        let allowed: [Role: Set<String>] = [
            .ingest: ["ingest", "other"],
            .supervisor: ["board", "history", "interaction", "metrics", "live", "other"],
            .wallboard: ["live", "other"],
            .admin: ["board", "history", "interaction", "ingest", "configure", "metrics", "live", "other"],
        ]
        let endpoints: [Endpoint] = [.board, .history, .interaction, .ingest, .configure, .metrics, .live, .other]
        for role in Role.allCases {
            let p = Principal(tokenID: 1, name: "x", role: role, queues: nil)
            XCTAssertEqual(Set(endpoints.filter { $0.permits(p) }.map { "\($0)" }), allowed[role], "\(role)")
        }
        let scoped = Principal(tokenID: 1, name: "x", role: .supervisor, queues: ["sales"])
        XCTAssertFalse(Endpoint.metrics.permits(scoped), "metrics list every queue")
    }

    func testTokensAreRefusedWithTheirReason() {
        let t = table
        func outcome(_ secret: String?, _ endpoint: Endpoint, loopback: Bool = true) -> String {
            switch t.authorize(secret, loopback: loopback, for: endpoint) {
            case .success(let p): return p.name
            case .failure(let r): return "\(r.status) \(r.message)"
            }
        }
        XCTAssertEqual(outcome(nil, .board), "401 a token is required", "loopback needs a token too once tokens exist")
        XCTAssertEqual(outcome("", .board), "401 the token is empty")
        XCTAssertEqual(outcome("wrong", .board), "401 token not recognised")
        XCTAssertEqual(outcome("old-secret", .board), "401 token expired")
        XCTAssertEqual(outcome("gone-secret", .board), "401 token revoked")
        XCTAssertEqual(outcome("wall-secret", .board), "403 a wallboard token may not do this (needs supervisor or admin)")
        XCTAssertEqual(outcome("ingest-secret", .live), "403 a ingest token may not do this (needs supervisor or wallboard or admin)")
        XCTAssertEqual(outcome("sales-secret", .metrics).prefix(4), "403 ")
        XCTAssertEqual(outcome("all-secret", .metrics), "token-7")
        XCTAssertEqual(outcome("admin-secret", .configure, loopback: false), "token-4")
    }

    func testWithoutTokensOnlyLoopbackIsServed() {
        let open = TokenTable()
        XCTAssertTrue(open.isOpen)
        XCTAssertEqual(try open.authorize(nil, loopback: true, for: .configure).get().role, .admin)
        guard case .failure(.notLoopback) = open.authorize("anything", loopback: false, for: .board) else { return XCTFail() }
        let boot = TokenTable(bootstrapHash: TokenSecret.hashHex("bootstrap-secret-1"))
        XCTAssertFalse(boot.isOpen)
        XCTAssertEqual(try boot.authorize("bootstrap-secret-1", loopback: false, for: .configure).get().role, .admin)
        guard case .failure(.missing) = boot.authorize(nil, loopback: true, for: .board) else { return XCTFail() }
        XCTAssertFalse(TokenTable([stored(6, "gone-secret", "admin", status: .revoked)], bootstrapHash: nil).isOpen,
                       "revoking every token does not open the server")
        XCTAssertTrue(isLoopback("127.0.0.1") && isLoopback("::1") && isLoopback("::ffff:127.0.0.1"))
        XCTAssertFalse(isLoopback("10.0.0.1") || isLoopback("128.0.0.1"))
    }

    func testSecretsAreRandomAndHashedWithSHA256() throws {
        let a = try TokenSecret.generate(), b = try TokenSecret.generate()
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.hasPrefix("sl_") && a.count == 46, a)
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        XCTAssertEqual(TokenSecret.hashHex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    // MARK: The stream

    func makeState(_ access: TokenTable) throws -> LiveState {
        var board = LiveBoard()
        for q in ["sales", "support"] { board.queues[q] = QueueConfig(id: q, name: q.capitalized) }
        board.agents["ann"] = AgentConfig(id: "ann", name: "Ann Secret", queues: ["sales", "support"])
        board.setPosition(LogPosition(orderTx: 100, id: 0))
        let limits = try LiveState.Limits(resumeCapacity: 1000, heartbeatSeconds: 5, batchMilliseconds: 1)
        return LiveState(board: board, limits: limits, access: access, now: t0)
    }

    var nextRow: Int64 = 0
    func queued(_ queue: String, id: Int64) -> [LogRow] {
        nextRow += 2
        let created = Transition(position: LogPosition(orderTx: 200, id: nextRow), interactionID: id, callID: "call-\(id)",
                                 version: 1, from: nil, to: .idle, at: t0)
        let q = Transition(position: LogPosition(orderTx: 200, id: nextRow + 1), interactionID: id, callID: "call-\(id)",
                           version: 2, from: .idle, to: .queued, at: t0, queue: queue)
        return [.transition(created), .transition(q)]
    }

    /// Everything sent to `c` by `effects`, snapshot jobs run.
    func texts(_ state: inout LiveState, _ effects: [LiveState.Effect], to c: ConnectionID) -> [String] {
        var out: [String] = []
        var pending = effects
        while !pending.isEmpty {
            let effect = pending.removeFirst()
            switch effect {
            case .send(let to, let m) where to == c: out.append(m.text)
            case .buildSnapshots(let job):
                pending += state.snapshotsBuilt(job.run(), position: job.position, builtAt: job.now, now: t0)
            default: break
            }
        }
        return out
    }

    func testAScopedSupervisorSeesOnlyItsQueuesWhateverItsHelloAsks() throws {
        var state = try makeState(table)
        let c = ConnectionID(1)
        _ = state.clientOpened(c, query: QueryItems(), loopback: false, now: t0)
        var got = texts(&state, state.clientMessage(c, #"{"type":"hello","token":"sales-secret","queues":null}"#, now: t0), to: c)
        got += texts(&state, state.rowsArrived(queued("sales", id: 1) + queued("support", id: 2), now: t0 + 1), to: c)
        got += texts(&state, state.flush(now: t0 + 2), to: c)
        // A second hello asking for support (and every queue) gets nothing more.
        got += texts(&state, state.clientMessage(c, #"{"type":"hello","token":"sales-secret","queues":["support"]}"#, now: t0 + 3), to: c)
        got += texts(&state, state.rowsArrived(queued("support", id: 3), now: t0 + 4), to: c)
        got += texts(&state, state.flush(now: t0 + 5), to: c)
        XCTAssertTrue(got.contains { $0.contains("call-1") }, "its own queue's call: \(got)")
        for text in got {
            XCTAssertFalse(text.contains("support") || text.contains("call-2") || text.contains("call-3"), text)
        }
        let other = state.clientMessage(c, #"{"type":"hello","token":"all-secret"}"#, now: t0 + 6)
        XCTAssertTrue(other.contains { if case .close(c, 4403, _) = $0 { return true } else { return false } },
                      "another token on the same connection is refused")
    }

    func testAWallboardGetsFiguresOnly() throws {
        var state = try makeState(table)
        let c = ConnectionID(1)
        _ = state.rowsArrived(queued("sales", id: 1), now: t0)
        _ = state.clientOpened(c, query: QueryItems(), loopback: false, now: t0)
        var got = texts(&state, state.clientMessage(c, #"{"type":"hello","token":"wall-secret"}"#, now: t0 + 1), to: c)
        got += texts(&state, state.rowsArrived(queued("sales", id: 2) + queued("support", id: 3), now: t0 + 2), to: c)
        got += texts(&state, state.flush(now: t0 + 3), to: c)
        XCTAssertEqual(got.count, 2, "a snapshot and one wallboard message: \(got)")
        let snapshot = try JSONSerialization.jsonObject(with: Data(got[0].utf8)) as! [String: Any]
        let figures = try JSONSerialization.jsonObject(with: Data(got[1].utf8)) as! [String: Any]
        XCTAssertEqual(snapshot["type"] as? String, "snapshot")
        XCTAssertEqual(((snapshot["wallboard"] as? [String: Any])?["sales"] as? [String: Any])?["waiting"] as? Int, 1)
        XCTAssertEqual(figures["type"] as? String, "wallboard")
        XCTAssertEqual(((figures["queues"] as? [String: Any])?["sales"] as? [String: Any])?["waiting"] as? Int, 2)
        // The counted figures are PostgreSQL's, as for every client: its queues' entries, no agent's.
        let periods = FigurePeriods(timeZone: "UTC", intervalStart: t0, intervalEnd: t0 + 900, dayStart: t0, dayEnd: t0 + 86400, asOf: t0)
        let sql = LiveFigures(periods: periods, queues: ["sales": #"{"today":{"offered":3,"serviceLevelPercent":66.67}}"#,
                                                         "support": #"{"today":{"offered":9}}"#],
                              agents: ["ann": #"{"today":{"answered":3}}"#])
        let counted = texts(&state, state.figuresLoaded(sql, now: t0 + 4), to: c)
        XCTAssertEqual(counted.count, 1, "\(counted)")
        let message = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(counted[0].utf8)) as? [String: Any])
        XCTAssertEqual(message["type"] as? String, "figures")
        let entries = try XCTUnwrap(message["figures"] as? [String: Any])
        XCTAssertEqual((entries["agents"] as? [String: Any])?.count, 0)
        let sales = try XCTUnwrap((entries["queues"] as? [String: Any])?["sales"] as? [String: Any])
        XCTAssertEqual((sales["today"] as? [String: Any])?["serviceLevelPercent"] as? Double, 66.67)
        XCTAssertEqual((entries["queues"] as? [String: Any])?.count, 1)
        // Nothing counted by the server itself: no `today` but PostgreSQL's.
        for text in got { XCTAssertFalse(text.contains("today"), text) }
        got += counted
        for text in got {
            for secret in ["call-", "Ann", "ann", "support", "\"id\":1,", "interaction\":{"] {
                XCTAssertFalse(text.contains(secret), "\(secret) in \(text)")
            }
        }
    }

    func testRevokedTokensLoseTheirStreams() throws {
        var state = try makeState(table)
        for (n, secret) in [(1, "sales-secret"), (2, "all-secret")] {
            let c = ConnectionID(UInt64(n))
            _ = state.clientOpened(c, query: QueryItems(), loopback: false, now: t0)
            _ = texts(&state, state.clientMessage(c, #"{"type":"hello","token":"\#(secret)"}"#, now: t0), to: c)
        }
        XCTAssertTrue(state.tokensLoaded(table, now: t0 + 1).isEmpty, "nothing changed")
        var changed = [stored(2, "sales-secret", "supervisor", queues: ["sales"], status: .revoked), stored(7, "all-secret", "supervisor")]
        let effects = state.tokensLoaded(TokenTable(changed, bootstrapHash: nil), now: t0 + 2)
        let closed = effects.compactMap { effect -> (ConnectionID, UInt16, String)? in
            if case .close(let c, let code, let reason) = effect { return (c, code, reason) } else { return nil }
        }
        XCTAssertEqual(closed.map(\.0), [ConnectionID(1)])
        XCTAssertEqual(closed.first?.1, 4401)
        XCTAssertEqual(closed.first?.2, "token revoked")
        changed[1].status = .expired
        let expired = state.tokensLoaded(TokenTable(changed, bootstrapHash: nil), now: t0 + 3)
        XCTAssertTrue(expired.contains { if case .close(ConnectionID(2), 4401, "token expired") = $0 { return true } else { return false } })
    }

    func testWritesPerTokenAreLimitedByABucket() {
        var limiter = RateLimiter(rate: 10, burst: 5)
        for _ in 0..<5 { XCTAssertNil(limiter.take("a", now: t0)) }
        let wait = limiter.take("a", now: t0)
        XCTAssertEqual(wait ?? 0, 0.1, accuracy: 0.001, "one more in a tenth of a second")
        XCTAssertNil(limiter.take("b", now: t0), "each token has its own bucket")
        XCTAssertNil(limiter.take("a", now: t0 + 0.1))
        XCTAssertNotNil(limiter.take("a", cost: 3, now: t0 + 0.2), "a batch counts its operations")
        XCTAssertNil(limiter.take("a", cost: 1000, now: t0 + 10), "a batch larger than the burst needs a full bucket")
        XCTAssertNotNil(limiter.take("a", now: t0 + 10))
    }
}
