/// Why the store refused a write: one case per rule of the life cycle (the SQLSTATEs of class
/// `SL` raised by `sql/002_lifecycle.sql`, `sql/003_writer_times_and_config_notify.sql`,
/// `sql/010_presence.sql` and `sql/011_transfers_and_facts.sql`).
public enum Refusal: String, Sendable, Equatable, CaseIterable {
    case illegalTransition = "SL001"
    case unknownInteraction = "SL002"
    case unknownState = "SL003"
    case agentRequired = "SL004"
    case agentMismatch = "SL005"
    case notHoldingAgent = "SL006"
    case timeBeforeLastTransition = "SL007"
    case transferRule = "SL008"
    case unknownQueue = "SL009"
    case unknownAgent = "SL010"
    case queueRequired = "SL011"
    case queueFixed = "SL012"
    /// Also a time that is not finite (infinity, -infinity).
    case badArgument = "SL013"
    /// A time later than the database clock plus the allowed clock skew
    /// (`sightline.max_clock_skew`, default 5 minutes).
    case timeInFuture = "SL014"
    /// The new interaction of a transfer to an agent (or voice application) accepted by another.
    case notTransferTarget = "SL015"
    // Presence (sql/010_presence.sql).
    case unknownPresence = "SL020"
    /// not_ready without a reason, or a reason with another state.
    case presenceReason = "SL021"
    case unknownPresenceReason = "SL022"
    /// Already in that state with that reason.
    case presenceUnchanged = "SL023"
    /// A voice application has no presence.
    case noPresence = "SL024"
    /// Tokens (sql/030_tokens.sql).
    case unknownRole = "SL030"
    case tokenExists = "SL031"
    case unknownToken = "SL032"
    /// An idempotency key sent again with a different request (sql/031_idempotency.sql).
    case idempotencyKeyReused = "SL033"

    /// A short name for API clients.
    public var code: String {
        switch self {
        case .illegalTransition: return "illegal_transition"
        case .unknownInteraction: return "unknown_interaction"
        case .unknownState: return "unknown_state"
        case .agentRequired: return "agent_required"
        case .agentMismatch: return "agent_mismatch"
        case .notHoldingAgent: return "not_holding_agent"
        case .timeBeforeLastTransition: return "time_before_last_transition"
        case .transferRule: return "transfer_rule"
        case .unknownQueue: return "unknown_queue"
        case .unknownAgent: return "unknown_agent"
        case .queueRequired: return "queue_required"
        case .queueFixed: return "queue_fixed"
        case .badArgument: return "bad_argument"
        case .timeInFuture: return "time_in_future"
        case .notTransferTarget: return "not_transfer_target"
        case .unknownPresence: return "unknown_presence"
        case .presenceReason: return "presence_reason"
        case .unknownPresenceReason: return "unknown_presence_reason"
        case .presenceUnchanged: return "presence_unchanged"
        case .noPresence: return "no_presence"
        case .unknownRole: return "unknown_role"
        case .tokenExists: return "token_exists"
        case .unknownToken: return "unknown_token"
        case .idempotencyKeyReused: return "idempotency_key_reused"
        }
    }

    /// The HTTP status an API answers this refusal with.
    public var httpStatus: Int {
        switch self {
        case .unknownInteraction, .unknownToken: return 404
        case .unknownState, .badArgument, .timeInFuture, .agentRequired, .queueRequired, .unknownPresence, .unknownRole: return 400
        case .unknownQueue, .unknownAgent, .idempotencyKeyReused: return 422
        default: return 409
        }
    }
}

/// An error of the interaction store.
public enum StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The life cycle refused the write; nothing changed.
    case refused(Refusal, message: String, hint: String?)
    /// The database is unreachable or the connection broke; nothing is known to have changed.
    case unavailable(String)
    /// Any other database error (constraint, syntax, ...).
    case database(PostgresError)
    /// A row did not have the shape the query promises (a NULL where a value must be, text that
    /// does not parse): says which query, row and column.
    case unexpectedRow(String)

    public init(_ error: PostgresError) {
        if let state = error.sqlState, let refusal = Refusal(rawValue: state) {
            self = .refused(refusal, message: error.message, hint: error.hint)
        } else if error.kind == .connection {
            self = .unavailable(error.message)
        } else if error.sqlState == "22P02" || error.sqlState == "22003" || error.sqlState == "22007"
                    || error.sqlState == "22008" || error.sqlState == "23514" {
            // Bad text for a number or time, or a value a check refused: the caller's input.
            self = .refused(.badArgument, message: error.message, hint: error.hint)
        } else {
            self = .database(error)
        }
    }

    public var description: String {
        switch self {
        case .refused(let refusal, let message, let hint):
            return "refused (\(refusal.code), \(refusal.rawValue)): \(message)" + (hint.map { $0.isEmpty ? "" : "; \($0)" } ?? "")
        case .unavailable(let message):
            return "database unavailable: \(message)"
        case .database(let error):
            return "database error: \(error)"
        case .unexpectedRow(let message):
            return "unexpected row from the database: \(message)"
        }
    }
}
