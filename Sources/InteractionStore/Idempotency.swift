/// Idempotency keys (sql/031_idempotency.sql): a write sent again with the same key gets the
/// first answer and changes nothing.
public struct IdempotentResult: Sendable, Equatable {
    /// nil: a writer claimed the key and committed without recording a result.
    public var status: Int?
    public var response: String?
}

extension InteractionStore {
    /// Claims `key` for the current transaction: nil when it is new (write, then
    /// `recordIdempotentResult` before committing), or the stored result of the first write.
    /// `.idempotencyKeyReused` when the key came with another request.
    public func claimIdempotencyKey(owner: String, key: String, request: String) throws -> IdempotentResult? {
        let r = try run {
            try connection.query("select status, response from sightline.claim_idempotency_key($1, $2, $3)", [owner, key, request])
        }
        return try r.rows("sightline.claim_idempotency_key") { row in
            IdempotentResult(status: try row.optional(0, "status", .int), response: try row.optional(1, "response", .text))
        }.first
    }

    public func recordIdempotentResult(owner: String, key: String, status: Int, response: String) throws {
        try run {
            try connection.query("select sightline.record_idempotent_result($1, $2, $3, $4)", [owner, key, String(status), response])
        }
    }
}
