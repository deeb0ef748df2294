import Foundation
import InteractionModel

extension ColumnType where Value == PresenceState {
    static var presence: Self { Self(kind: "a presence state") { PresenceState(rawValue: $0) } }
}

/// Agent presence: `sightline.set_presence` and its log (sql/010_presence.sql).
extension InteractionStore {
    /// Changes an agent's presence (refused: `.unknownAgent`, `.unknownPresence`,
    /// `.presenceReason`, `.unknownPresenceReason`, `.presenceUnchanged`, `.noPresence`, and the
    /// time refusals). Returns the log row it wrote.
    @discardableResult
    public func setPresence(agent: String, state: String, reason: String? = nil, at: Date? = nil) throws -> PresenceChange {
        let r = try run {
            try connection.query("select p.id from sightline.set_presence($1, $2, $3, $4) p",
                                 [agent, state, reason, at.map(sqlTime)])
        }
        let id = try r.single("sightline.set_presence") { try $0.value(0, "id", .int64) }
        let rows = try run { try connection.query(Self.presenceSelect + " where p.id = $1", [String(id)]) }.presenceRows()
        guard rows.count == 1, case .presence(let change) = rows[0] else {
            throw StoreError.unexpectedRow("presence log row \(id) of agent \(agent): \(rows)")
        }
        return change
    }

    @discardableResult
    public func setPresence(agent: String, _ state: PresenceState, reason: String? = nil, at: Date? = nil) throws -> PresenceChange {
        try setPresence(agent: agent, state: state.rawValue, reason: reason, at: at)
    }

    /// The presence of every agent that ever changed it.
    public func presence() throws -> [String: AgentPresence] {
        let r = try run {
            try connection.query("""
                select agent_id, state::text, reason, \(sqlMicros("since")), \(sqlMicros("logged_in_since")), version
                  from sightline.agent_presence
                """)
        }
        let rows = try r.rows("sightline.agent_presence") { row in
            (try row.value(0, "agent_id", .text),
             AgentPresence(state: try row.value(1, "state", .presence), reason: try row.optional(2, "reason", .text),
                           since: try row.value(3, "since", .time), loggedInSince: try row.optional(4, "logged_in_since", .time),
                           version: try row.value(5, "version", .int)))
        }
        return Dictionary(rows, uniquingKeysWith: { a, _ in a })
    }

    /// Every presence change of one agent, in version order.
    public func presenceChanges(of agent: String) throws -> [PresenceChange] {
        try run {
            try connection.query(Self.presenceSelect + " where p.agent_id = $1 order by p.version", [agent])
        }.presenceRows().compactMap { row in
            guard case .presence(let p) = row else { throw StoreError.unexpectedRow("presence log row \(row.position): \(row)") }
            return p
        }
    }

    /// The configured not-ready reasons.
    public func presenceReasons() throws -> [PresenceReason] {
        let r = try run { try connection.query("select code, name from sightline.presence_reasons order by code") }
        return try r.rows("sightline.presence_reasons") { row in
            PresenceReason(code: try row.value(0, "code", .text), name: try row.value(1, "name", .text))
        }
    }

    /// Creates or renames a not-ready reason.
    public func upsertPresenceReason(_ reason: PresenceReason) throws {
        try run {
            try connection.query("select sightline.upsert_presence_reason($1, $2)", [reason.code, reason.name])
        }
    }

    /// The presence log as `PostgresResult.presenceRows()` reads it.
    static let presenceSelect = """
        select p.order_tx::text, p.id, p.agent_id, p.version, p.from_state::text, p.from_reason,
               p.to_state::text, p.to_reason, \(sqlMicros("p.at"))
          from sightline.presence_log p
        """
}

extension PostgresResult {
    /// Rows of `InteractionStore.presenceSelect`: a row whose position reads is never an error
    /// (anything else wrong makes it `.unreadable`).
    func presenceRows() throws -> [LogRow] {
        try rows("presence log row") { row in
            let position = LogPosition(orderTx: try row.value(0, "order_tx", .uint64), id: try row.value(1, "id", .int64))
            do {
                return .presence(PresenceChange(
                    position: position, agent: try row.value(2, "agent_id", .text), version: try row.value(3, "version", .int),
                    from: try row.value(4, "from_state", .presence), fromReason: try row.optional(5, "from_reason", .text),
                    to: try row.value(6, "to_state", .presence), reason: try row.optional(7, "to_reason", .text),
                    at: try row.value(8, "at", .time)))
            } catch let error as ColumnError {
                return .unreadable(position: position, interactionID: nil, reason: "presence change: \(error)")
            }
        }
    }
}
