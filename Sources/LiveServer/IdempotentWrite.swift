import Foundation
import InteractionStore
import LWS

/// Writes that are safe to retry (sql/031_idempotency.sql has the rule): a write with an
/// idempotency key (the `Idempotency-Key` header, or `idempotencyKey` in the body) claims the
/// key in its own transaction; sent again, it gets the first answer (with
/// `Idempotent-Replayed: true`) and changes nothing. Keys belong to the token that sent them.
extension LiveService {
    /// 429 with Retry-After when `principal` wrote more than its rate (every token has its own
    /// bucket; loopback clients of a server without tokens are not limited).
    func rateRefusal(_ principal: Principal, cost: Int) -> HTTPResponse? {
        guard principal.tokenID != nil || principal.name == "bootstrap" else { return nil }
        let key = principal.tokenID.map { "token-\($0)" } ?? principal.name
        guard let wait = rateLimiter.take(key, cost: cost, now: Date()) else { return nil }
        let seconds = max(1, Int(wait.rounded(.up)))
        var response = APIError(status: 429, code: "rate_limited",
                                message: "token \(principal.name) writes more than \(Int(rateLimiter.rate)) operations a second",
                                hint: "retry after \(seconds) s; serve --ingest-rate and --ingest-burst set the limit").response
        response.headers.append(("retry-after", String(seconds)))
        return response
    }

    /// The body of a write as a JSON object without its `idempotencyKey`, and the key.
    func writeBody(_ request: HTTPRequest) throws -> (body: [String: Any], key: String?) {
        var body = try jsonObject(request.body)
        var key = request.headers["idempotency-key"]
        if let field = body.removeValue(forKey: "idempotencyKey") {
            guard let text = field as? String else { throw APIError.badRequest("\"idempotencyKey\" must be a string") }
            if let key, key != text {
                throw APIError.badRequest("the Idempotency-Key header and \"idempotencyKey\" differ: send one key")
            }
            key = text
        }
        if let key {
            guard (1...200).contains(key.count), !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw APIError.badRequest("an idempotency key must be 1 to 200 characters without control characters")
            }
        }
        return (body, key)
    }

    /// Runs a write on a database worker. Without a key it runs at most once (a broken
    /// connection answers 503 write_outcome_unknown); with one, the claim, the write and its
    /// recorded answer commit together, so it may be replayed.
    func write(_ request: HTTPRequest, status: Int, key: String?, principal: Principal, cost: Int = 1,
               _ job: @escaping (InteractionStore) throws -> String) {
        if let refused = rateRefusal(principal, cost: cost) {
            server?.respond(request.id, refused)
            return
        }
        guard let key else {
            respondFromPool(request, replayable: false) { store in .json(status: status, try job(store)) }
            return
        }
        let owner = principal.tokenID.map { "token-\($0)" } ?? principal.name
        let described = request.method + " " + request.path + "\n" + String(decoding: request.body, as: UTF8.self)
        respondFromPool(request, replayable: true) { store in
            try store.transaction {
                if let first = try store.claimIdempotencyKey(owner: owner, key: key, request: described) {
                    guard let firstStatus = first.status, let body = first.response else {
                        throw APIError(status: 409, code: "idempotency_key_pending",
                                       message: "the key was claimed by a write that recorded no answer",
                                       hint: "use a new key")
                    }
                    var response = HTTPResponse.json(status: firstStatus, body)
                    response.headers.append(("idempotent-replayed", "true"))
                    return response
                }
                let body = try job(store)
                try store.recordIdempotentResult(owner: owner, key: key, status: status, response: body)
                return .json(status: status, body)
            }
        }
    }
}
