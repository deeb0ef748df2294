import CLibCrypto
import Foundation
import InteractionModel
import InteractionStore

/// What a token may do (sql/030_tokens.sql has the same four).
public enum Role: String, Sendable, CaseIterable {
    /// Writes interactions.
    case ingest
    /// Reads the board, history and caller paths (optionally of some queues only).
    case supervisor
    /// Aggregate queue figures on the live stream only.
    case wallboard
    /// Everything: queues, agents, every read and write.
    case admin
}

/// Who is asking: the holder of one token, the bootstrap token, or (no token configured) a
/// loopback client.
public struct Principal: Sendable, Equatable {
    /// The stored token's id; nil for the bootstrap token and for loopback clients.
    public var tokenID: Int64?
    public var name: String
    public var role: Role
    /// nil: every queue.
    public var queues: Set<String>?

    public init(tokenID: Int64?, name: String, role: Role, queues: Set<String>?) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
        self.queues = queues
    }

    /// Whether this principal may see what happens in `queue` (nil: not routed yet, which only
    /// principals of every queue see).
    func sees(queue: String?) -> Bool {
        Subscription.wants(filter: queues, queue: queue)
    }

    /// The agents this principal may see: members of one of its queues, listed with only those
    /// queues (all of them for a principal of every queue).
    func visibleAgents<S: Sequence>(_ agents: S) -> [AgentConfig] where S.Element == AgentConfig {
        guard let queues else { return Array(agents) }
        return agents.compactMap { a in
            guard a.queues.contains(where: queues.contains) else { return nil }
            var shown = a
            shown.queues = a.queues.filter(queues.contains)
            return shown
        }
    }

    /// The queues a client asking for `requested` (nil: every queue) gets: never more than the
    /// token's scope.
    func narrow(_ requested: Set<String>?) -> Set<String>? {
        guard let queues else { return requested }
        return requested.map { $0.intersection(queues) } ?? queues
    }
}

/// The parts of the API, as far as access goes.
enum Endpoint: Sendable, Equatable {
    case board, history, interaction, ingest, configure, metrics, live, other

    /// The endpoint of an HTTP request; nil: public (the OpenAPI document, health).
    static func of(method: String, path: String) -> Endpoint? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        switch parts.first {
        case "metrics": return .metrics
        case "api": break
        default: return nil
        }
        guard parts.count >= 2 else { return .other }
        let read = method == "GET" || method == "HEAD"
        switch parts[1] {
        case "openapi.json" where parts.count == 2: return nil
        case "board": return .board
        case "history": return .history
        case "interactions": return read && parts.count > 2 ? .interaction : .ingest
        case "batch": return .ingest
        // Presence is written by the ACD (or the agent's desktop) like interactions.
        case "agents" where parts.count == 4 && parts[3] == "presence": return .ingest
        // The configuration: read like the board (narrowed to a token's queues), written by admins.
        case "queues", "agents", "presence-reasons": return read ? .board : .configure
        case "figures": return .board
        // Firing alerts are read like the board; failed deliveries are the alert configuration's.
        case "alerts": return parts.count == 2 ? .board : .configure
        default: return .other
        }
    }

    /// Whether `principal` may use this endpoint at all (what it then sees is narrowed to its
    /// queues).
    func permits(_ principal: Principal) -> Bool {
        switch (self, principal.role) {
        case (_, .admin): return true
        case (.board, .supervisor), (.history, .supervisor), (.interaction, .supervisor): return true
        case (.live, .supervisor), (.live, .wallboard): return true
        case (.ingest, .ingest): return true
        // Metrics list every queue.
        case (.metrics, .supervisor): return principal.queues == nil
        // Any valid token learns that a path does not exist.
        case (.other, _): return true
        default: return false
        }
    }

    var roles: String {
        let allowed = Role.allCases.filter { permits(Principal(tokenID: nil, name: "", role: $0, queues: nil)) }
        return allowed.map(\.rawValue).joined(separator: " or ") + (self == .metrics ? " (of every queue)" : "")
    }
}

/// Why a request or a hello was refused.
enum AccessRefusal: Error, Sendable, Equatable {
    case missing, empty, unknown, expired, revoked
    /// No token is configured, and the client is not on this machine.
    case notLoopback
    case role(Role, needs: String)

    var status: Int {
        switch self {
        case .notLoopback, .role: return 403
        default: return 401
        }
    }

    var closeCode: UInt16 { status == 401 ? 4401 : 4403 }

    var message: String {
        switch self {
        case .missing: return "a token is required"
        case .empty: return "the token is empty"
        case .unknown: return "token not recognised"
        case .expired: return "token expired"
        case .revoked: return "token revoked"
        case .notLoopback: return "no tokens are configured, so only clients on this machine are served"
        case .role(let role, let needs): return "a \(role.rawValue) token may not do this (needs \(needs))"
        }
    }

    var hint: String {
        switch self {
        case .missing, .empty, .unknown: return "send Authorization: Bearer TOKEN (on /live: the token in the hello)"
        case .expired, .revoked: return "ask an administrator for a new token (sightline token create)"
        case .notLoopback: return "create a token with: sightline token create --name NAME --role ROLE"
        case .role: return "use a token of that role"
        }
    }

    var apiError: APIError {
        APIError(status: status, code: status == 401 ? "unauthorized" : "forbidden", message: message, hint: hint)
    }
}

/// The tokens the server accepts, as SQL last reported them, plus the bootstrap token. With
/// none at all (no stored token, not even a revoked one, and no bootstrap token) the server is
/// a demo for this machine: every loopback client may do everything, nobody else anything.
struct TokenTable: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var principal: Principal
        var status: StoredToken.Status
    }

    private(set) var byHash: [String: Entry] = [:]
    let bootstrapHash: String?

    init(bootstrapHash: String? = nil) {
        self.bootstrapHash = bootstrapHash
    }

    init(_ stored: [StoredToken], bootstrapHash: String?) {
        self.bootstrapHash = bootstrapHash
        for t in stored {
            guard let role = Role(rawValue: t.role) else { continue }
            let entry = Entry(principal: Principal(tokenID: t.id, name: t.name, role: role, queues: t.queues.map(Set.init)),
                              status: t.status)
            // Revoked names can be reused, hashes cannot: an active entry always wins.
            if let old = byHash[t.hashHex], old.status == .active { continue }
            byHash[t.hashHex] = entry
        }
    }

    /// No token configured: loopback clients only.
    var isOpen: Bool { byHash.isEmpty && bootstrapHash == nil }

    /// The principal presenting `secret` (nil: none presented), from a loopback address or not.
    func authenticate(_ secret: String?, loopback: Bool) -> Result<Principal, AccessRefusal> {
        if isOpen {
            return loopback ? .success(Principal(tokenID: nil, name: "loopback", role: .admin, queues: nil)) : .failure(.notLoopback)
        }
        guard let secret else { return .failure(.missing) }
        guard !secret.isEmpty else { return .failure(.empty) }
        let hash = TokenSecret.hashHex(secret)
        if let bootstrapHash, TokenSecret.equal(hash, bootstrapHash) {
            return .success(Principal(tokenID: nil, name: "bootstrap", role: .admin, queues: nil))
        }
        guard let entry = byHash[hash] else { return .failure(.unknown) }
        switch entry.status {
        case .active: return .success(entry.principal)
        case .expired: return .failure(.expired)
        case .revoked: return .failure(.revoked)
        }
    }

    /// Whether the token behind `principal` is still active here.
    func stillValid(_ principal: Principal) -> Bool {
        guard let id = principal.tokenID else {
            // Bootstrap and loopback principals last as long as their mode.
            return principal.name == "loopback" ? isOpen : bootstrapHash != nil
        }
        return byHash.values.contains { $0.principal.tokenID == id && $0.status == .active }
    }

    /// Authenticates and checks the endpoint.
    func authorize(_ secret: String?, loopback: Bool, for endpoint: Endpoint) -> Result<Principal, AccessRefusal> {
        switch authenticate(secret, loopback: loopback) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let principal):
            guard endpoint.permits(principal) else { return .failure(.role(principal.role, needs: endpoint.roles)) }
            return .success(principal)
        }
    }
}

/// Token secrets: 32 random bytes from OpenSSL's generator, stored only as SHA-256.
public enum TokenSecret {
    /// A new secret: "sl_" and 43 URL-safe base64 characters.
    public static func generate() throws -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&bytes, Int32(bytes.count)) == 1 else {
            throw APIError(status: 500, code: "no_randomness", message: "the random generator failed")
        }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "sl_" + text
    }

    public static func hash(_ secret: String) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        let bytes = Array(secret.utf8)
        _ = SHA256(bytes, bytes.count, &digest)
        return digest
    }

    public static func hashHex(_ secret: String) -> String {
        hash(secret).map { String(format: "%02x", $0) }.joined()
    }

    /// Constant-time comparison of two hex digests.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return CRYPTO_memcmp(x, y, x.count) == 0
    }
}

/// Whether a peer address (as lws reports it) is this machine.
func isLoopback(_ peer: String) -> Bool {
    peer.hasPrefix("127.") || peer == "::1" || peer.hasPrefix("::ffff:127.") || peer == "localhost"
}
