import Foundation

/// An access token as stored (sql/030_tokens.sql): never the secret, only its SHA-256.
public struct StoredToken: Sendable, Equatable {
    public enum Status: String, Sendable { case active, expired, revoked }

    public var id: Int64
    public var name: String
    public var role: String
    /// nil: every queue.
    public var queues: [String]?
    /// SHA-256 of the secret, lowercase hex.
    public var hashHex: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    /// As SQL decides it (sightline.token_status), at the time of the read.
    public var status: Status

    public init(id: Int64, name: String, role: String, queues: [String]?, hashHex: String, createdAt: Date,
                expiresAt: Date? = nil, revokedAt: Date? = nil, status: Status) {
        self.id = id
        self.name = name
        self.role = role
        self.queues = queues
        self.hashHex = hashHex
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.status = status
    }
}

extension InteractionStore {
    /// Stores a token (the secret's SHA-256 only) and returns its id. Refusals: `.badArgument`,
    /// `.unknownRole`, `.unknownQueue`, `.tokenExists`.
    @discardableResult
    public func createToken(name: String, role: String, queues: [String]?, expiresAt: Date?, hash: [UInt8]) throws -> Int64 {
        let hex = hash.map { String(format: "%02x", $0) }.joined()
        let r = try run {
            try connection.query("select sightline.create_token($1, $2, $3::text[], $4, decode($5, 'hex'))",
                                 [name, role, queues.map(pgArray), expiresAt.map(sqlTime), hex])
        }
        return try r.single("sightline.create_token") { try $0.value(0, "id", .int64) }
    }

    /// Revokes the active token named `name`; `.unknownToken` when there is none.
    @discardableResult
    public func revokeToken(name: String) throws -> Int64 {
        let r = try run { try connection.query("select sightline.revoke_token($1)", [name]) }
        return try r.single("sightline.revoke_token") { try $0.value(0, "id", .int64) }
    }

    /// Every token with its standing; `activeOnly` leaves out expired and revoked ones.
    public func tokens(activeOnly: Bool = false) throws -> [StoredToken] {
        let r = try run {
            try connection.query("""
                select id, name, role, array_to_json(queues)::text, encode(hash, 'hex'), \(sqlMicros("created_at")),
                       \(sqlMicros("expires_at")), \(sqlMicros("revoked_at")), status
                  from sightline.token_status where not $1::boolean or status = 'active' order by name, id
                """, [activeOnly ? "true" : "false"])
        }
        let queueList = ColumnType<[String]>(kind: "a JSON array of strings") {
            try? JSONDecoder().decode([String].self, from: Data($0.utf8))
        }
        let status = ColumnType<StoredToken.Status>(kind: "a token status") { StoredToken.Status(rawValue: $0) }
        return try r.rows("sightline.token_status") { row in
            StoredToken(id: try row.value(0, "id", .int64), name: try row.value(1, "name", .text),
                        role: try row.value(2, "role", .text), queues: try row.optional(3, "queues", queueList),
                        hashHex: try row.value(4, "hash", .text), createdAt: try row.value(5, "created_at", .time),
                        expiresAt: try row.optional(6, "expires_at", .time), revokedAt: try row.optional(7, "revoked_at", .time),
                        status: try row.value(8, "status", status))
        }
    }
}
