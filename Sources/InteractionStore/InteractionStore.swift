import Foundation
import InteractionModel

/// The interaction store: the life cycle's SQL functions behind a typed Swift API.
///
/// Every write goes through `sightline.*` functions, the same ones an ACD or a person in psql
/// calls, so the rules have one enforcer. One store owns one connection and is used by one
/// thread at a time.
public final class InteractionStore {
    public let connection: PostgresConnection
    private var inTransaction = false

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    public convenience init(conninfo: String) throws {
        do {
            self.init(connection: try PostgresConnection(conninfo))
        } catch let error as PostgresError {
            throw StoreError(error)
        }
    }

    /// PostgreSQL cancels any later statement of this connection that runs longer than this
    /// (SQLSTATE 57014, query_canceled).
    public func setStatementTimeout(milliseconds: Int) throws {
        try run { try connection.query("select set_config('statement_timeout', $1, false)", ["\(max(1, milliseconds))ms"]) }
    }

    /// Runs `body` inside one transaction: all of it commits, or none of it. Inside another
    /// transaction of this store, `body` is part of that one.
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        if inTransaction { return try body() }
        try run { try connection.query("begin") }
        inTransaction = true
        defer { inTransaction = false }
        do {
            let value = try body()
            try run { try connection.query("commit") }
            return value
        } catch {
            _ = try? connection.query("rollback")
            throw error
        }
    }

    // MARK: Writes

    /// A call arrives: a new interaction in idle. Returns its id. `at` must be finite and not
    /// later than now plus the allowed clock skew (refused: `.badArgument`, `.timeInFuture`).
    @discardableResult
    public func createInteraction(callID: String, at: Date? = nil) throws -> Int64 {
        let r = try run { try connection.query("select sightline.create_interaction($1, $2)", [callID, at.map(sqlTime)]) }
        return try r.single("sightline.create_interaction") { try $0.value(0, "id", .int64) }
    }

    /// Moves an interaction to `to` (a state name; unknown names are refused by the store).
    @discardableResult
    public func transition(_ id: Int64, to: String, agent: String? = nil, queue: String? = nil,
                           at: Date? = nil) throws -> Transition {
        let r = try run {
            try connection.query("""
                select t.id from sightline.transition($1, $2, $3, $4, $5) t
                """, [String(id), to, agent, queue, at.map(sqlTime)])
        }
        let logID = try r.single("sightline.transition") { try $0.value(0, "id", .int64) }
        let rows = try run { try connection.query(Self.transitionSelect + " where t.id = $1", [String(logID)]) }.logRows()
        guard rows.count == 1, let row = rows.first else {
            throw StoreError.unexpectedRow("log row \(logID) of interaction \(id): \(rows.count) rows where one was expected")
        }
        return try row.readable()
    }

    @discardableResult
    public func transition(_ id: Int64, to: InteractionState, agent: String? = nil, queue: String? = nil,
                           at: Date? = nil) throws -> Transition {
        try transition(id, to: to.rawValue, agent: agent, queue: queue, at: at)
    }

    /// Starts a transfer: the original (delivered) enters queued and a new interaction is created
    /// in idle, linked original -> new. Returns the new interaction's id. The new interaction's
    /// `delivered` completes the transfer; its `completed` (before delivered) fails it.
    @discardableResult
    public func beginTransfer(_ id: Int64, kind: String, target: String, agent: String? = nil,
                              at: Date? = nil) throws -> Int64 {
        let r = try run {
            try connection.query("select sightline.begin_transfer($1, $2, $3, $4, $5)",
                                 [String(id), kind, target, agent, at.map(sqlTime)])
        }
        return try r.single("sightline.begin_transfer") { try $0.value(0, "id", .int64) }
    }

    /// Creates or updates a queue (PostgreSQL sends NOTIFY sightline_config).
    public func upsertQueue(_ q: QueueConfig) throws {
        try run {
            try connection.query("select sightline.upsert_queue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", [
                q.id, q.name, String(q.serviceLevelSeconds), String(q.waitWarningSeconds),
                String(q.waitAlarmSeconds), String(q.holdAlarmSeconds), String(q.serviceLevelTargetPercent),
                q.abandonsInDenominator ? "t" : "f", q.excludeShortAbandons ? "t" : "f", String(q.shortAbandonSeconds),
                q.abandonWarningPercent.map(String.init), q.abandonAlarmPercent.map(String.init),
            ])
        }
    }

    /// Creates or updates an agent (PostgreSQL sends NOTIFY sightline_config).
    public func upsertAgent(_ a: AgentConfig) throws {
        try run {
            try connection.query("select sightline.upsert_agent($1, $2, $3, $4)",
                                 [a.id, a.name, pgArray(a.queues), a.isVoiceApplication ? "voice_application" : "person"])
        }
    }

    // MARK: Reads

    public func queues() throws -> [QueueConfig] {
        let r = try run {
            try connection.query("""
                select id, name, service_level_seconds, service_level_target_percent, wait_warning_seconds,
                       wait_alarm_seconds, hold_alarm_seconds, abandons_in_denominator, exclude_short_abandons,
                       short_abandon_seconds, abandon_warning_percent, abandon_alarm_percent
                  from sightline.queues order by id
                """)
        }
        return try r.rows("sightline.queues") { row in
            QueueConfig(id: try row.value(0, "id", .text), name: try row.value(1, "name", .text),
                        serviceLevelSeconds: try row.value(2, "service_level_seconds", .int),
                        serviceLevelTargetPercent: try row.value(3, "service_level_target_percent", .int),
                        waitWarningSeconds: try row.value(4, "wait_warning_seconds", .int),
                        waitAlarmSeconds: try row.value(5, "wait_alarm_seconds", .int),
                        holdAlarmSeconds: try row.value(6, "hold_alarm_seconds", .int),
                        abandonsInDenominator: try row.value(7, "abandons_in_denominator", .bool),
                        excludeShortAbandons: try row.value(8, "exclude_short_abandons", .bool),
                        shortAbandonSeconds: try row.value(9, "short_abandon_seconds", .int),
                        abandonWarningPercent: try row.optional(10, "abandon_warning_percent", .int),
                        abandonAlarmPercent: try row.optional(11, "abandon_alarm_percent", .int))
        }
    }

    public func agents() throws -> [AgentConfig] {
        let r = try run { try connection.query("select id, name, array_to_json(queues)::text, kind from sightline.agents order by id") }
        let queueList = ColumnType<[String]>(kind: "a JSON array of strings") {
            try? JSONDecoder().decode([String].self, from: Data($0.utf8))
        }
        return try r.rows("sightline.agents") { row in
            AgentConfig(id: try row.value(0, "id", .text), name: try row.value(1, "name", .text),
                        queues: try row.value(2, "queues", queueList),
                        isVoiceApplication: try row.value(3, "kind", .text) == "voice_application")
        }
    }

    /// The log after `position`, in stream order, only rows of finished transactions (see the
    /// note on `sightline.transitions` in sql/001_schema.sql): no row can later appear before
    /// the last one returned.
    ///
    /// No stored row makes the read fail: one that cannot be read as a transition (a time that
    /// is not finite, say, written around the life-cycle functions) comes back as
    /// `.unreadable` in its place, so the reader moves past it.
    public func readLog(after position: LogPosition, limit: Int = 1000) throws -> [LogRow] {
        // One bound for both logs: every transaction below it has finished, so each statement
        // (with its own snapshot) sees all of their rows.
        let bound = try run { try connection.query("select pg_snapshot_xmin(pg_current_snapshot())::text") }
            .single("snapshot xmin") { try $0.value(0, "xmin", .text) }
        let parameters = [String(position.orderTx), String(position.id), String(limit), bound]
        let transitions = try run {
            try connection.query(Self.transitionSelect + """
                 where (t.order_tx, t.id) > ($1::xid8, $2::bigint) and t.order_tx < $4::xid8
                 order by t.order_tx, t.id limit $3
                """, parameters)
        }.logRows()
        let presence = try run {
            try connection.query(Self.presenceSelect + """
                 where (p.order_tx, p.id) > ($1::xid8, $2::bigint) and p.order_tx < $4::xid8
                 order by p.order_tx, p.id limit $3
                """, parameters)
        }.presenceRows()
        guard !presence.isEmpty else { return transitions }
        guard !transitions.isEmpty else { return presence }
        return Array((transitions + presence).sorted { $0.position < $1.position }.prefix(limit))
    }

    /// Every transition of one interaction, in version order. A row that cannot be read is
    /// `StoreError.unexpectedRow`.
    public func transitions(of id: Int64) throws -> [Transition] {
        try run {
            try connection.query(Self.transitionSelect + " where t.interaction_id = $1 order by t.version", [String(id)])
        }.logRows().map { try $0.readable() }
    }

    /// The live board as of a consistent snapshot (its position is where to tail from), and the
    /// log rows of live interactions it skipped because they could not be read.
    ///
    /// Rows the snapshot already reflects may be read again by the tailer; the board skips them
    /// by version.
    public func loadBoard() throws -> (board: LiveBoard, skipped: [LogRow]) {
        try run { try connection.query("begin isolation level repeatable read read only") }
        defer { _ = try? connection.query("rollback") }
        let xmin = try run { try connection.query("select pg_snapshot_xmin(pg_current_snapshot())::text") }
            .single("snapshot xmin") { try $0.value(0, "xmin", .uint64) }
        var board = LiveBoard()
        for q in try queues() { board.queues[q.id] = q }
        for a in try agents() { board.agents[a.id] = a }
        let live = try run {
            try connection.query(Self.transitionSelect + """
                 where t.interaction_id in (select id from sightline.interactions where state <> 'completed')
                 order by t.interaction_id, t.version
                """)
        }.logRows()
        var skipped: [LogRow] = []
        for row in live {
            guard case .transition(let t) = row else {
                skipped.append(row)
                continue
            }
            _ = board.apply(t)
        }
        for (agent, presence) in try presence() { board.setPresence(agent, presence) }
        board.presenceReasons = try presenceReasons()
        // Everything below xmin is in this snapshot; tail from there.
        board.setPosition(LogPosition(orderTx: xmin > 0 ? xmin - 1 : 0, id: Int64.max))
        return (board, skipped)
    }

    /// The stored statistics of a completed interaction.
    public func statistics(of id: Int64) throws -> InteractionStatistics? {
        let r = try run {
            try connection.query("""
                select \(statisticsColumns("h")) from sightline.interaction_history h where h.interaction_id = $1
                """, [String(id)])
        }
        return try r.rows("statistics of interaction \(id)") { try $0.statistics(from: 0) }.first
    }

    // MARK: Internals

    /// The log as `PostgresResult.logRows()` reads it. No expression can fail for a stored value
    /// (see `sqlMicros`).
    static let transitionSelect = """
        select t.order_tx::text, t.id, t.interaction_id, i.call_id, t.version, t.from_state::text, t.to_state::text,
               \(sqlMicros("t.at")), t.agent_id, t.queue_id, t.held_by, t.cause,
               t.related_id, tr.kind, tr.target
          from sightline.transitions t
          join sightline.interactions i on i.id = t.interaction_id
          left join sightline.transfers tr on t.cause = 'transfer_started' and tr.new_id = t.related_id
        """

    /// Maps libpq errors to store errors.
    @discardableResult
    func run<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as PostgresError {
            throw StoreError(error)
        }
    }
}

extension LogRow {
    /// The transition, or `StoreError.unexpectedRow` for an unreadable row.
    func readable() throws -> Transition {
        switch self {
        case .transition(let t):
            return t
        case .presence(let p):
            throw StoreError.unexpectedRow("log row \(p.position) is a presence change of agent \(p.agent), not a transition")
        case .unreadable(let position, let interactionID, let reason):
            throw StoreError.unexpectedRow("log row \(position)" + (interactionID.map { " of interaction \($0)" } ?? "") + ": \(reason)")
        }
    }
}

extension PostgresResult {
    /// Rows of `InteractionStore.transitionSelect`, in order. A row whose position reads is
    /// never an error: whatever else is wrong with it makes it `.unreadable`. The position
    /// columns are NOT NULL; a result without them is `StoreError.unexpectedRow`.
    func logRows() throws -> [LogRow] {
        try rows("log row") { row in
            let position = LogPosition(orderTx: try row.value(0, "order_tx", .uint64), id: try row.value(1, "id", .int64))
            do {
                return .transition(try row.transition(at: position))
            } catch let error as ColumnError {
                return .unreadable(position: position, interactionID: try? row.value(2, "interaction_id", .int64),
                                   reason: error.description)
            }
        }
    }
}

extension RowReader {
    /// A row of `InteractionStore.transitionSelect` as a transition.
    func transition(at position: LogPosition) throws -> Transition {
        let causeText = try value(11, "cause", .text)
        guard let cause = TransitionCause(rawValue: causeText) else {
            throw ColumnError(description: "cause is '\(causeText.prefix(80))', not a known cause")
        }
        let related = try optional(12, "related_id", .int64)
        var transfer: TransferInfo?
        if cause == .transferStarted, let related, let kind = try optional(13, "transfer kind", .transferKind) {
            transfer = TransferInfo(newInteraction: related, kind: kind, target: try optional(14, "transfer target", .text) ?? "")
        }
        let to = try value(6, "to_state", .state)
        return Transition(
            position: position,
            interactionID: try value(2, "interaction_id", .int64), callID: try value(3, "call_id", .text),
            version: try value(4, "version", .int), from: try optional(5, "from_state", .state), to: to,
            at: try value(7, "at", .time), agent: try optional(8, "agent_id", .text),
            queue: try optional(9, "queue_id", .text), heldBy: try optional(10, "held_by", .text), cause: cause,
            transferFrom: cause == .transferCreated ? related : nil, transfer: transfer)
    }
}

/// A time as PostgreSQL reads it, to the microsecond, in UTC.
public func sqlTime(_ date: Date) -> String {
    let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    var seconds = time_t(micros / 1_000_000)
    var fraction = micros % 1_000_000
    if fraction < 0 { fraction += 1_000_000; seconds -= 1 }
    var parts = tm()
    gmtime_r(&seconds, &parts)
    return String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", parts.tm_year + 1900, parts.tm_mon + 1,
                  parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, Int(fraction))
}

/// A text[] literal, every element quoted.
func pgArray(_ items: [String]) -> String {
    "{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        .joined(separator: ",") + "}"
}

/// An interaction that has not completed, as `InteractionStore.liveInteractions` reads it.
public struct OpenInteraction: Sendable, Equatable {
    public var id: Int64
    public var state: InteractionState
    public var heldBy: String?
    public var transferFrom: Int64?
    /// The new interaction of a transfer this one started and that is in progress.
    public var transferTo: Int64?
}

extension InteractionStore {
    /// Live interactions on any of `queues` or `agents` or whose call id starts with
    /// `callPrefix`, and the new interactions of transfers they started.
    public func liveInteractions(queues: [String], agents: [String], callPrefix: String? = nil) throws -> [OpenInteraction] {
        try openInteractions("""
            with mine as (select id from sightline.interactions
                           where state <> 'completed' and (queue_id = any($1::text[]) or agent_id = any($2::text[])
                                                           or starts_with(call_id, $3)))
            select id, state::text, held_by, transfer_from, transfer_to from sightline.interactions
             where state <> 'completed' and (id in (select id from mine) or transfer_from in (select id from mine))
             order by id
            """, [pgArray(queues), pgArray(agents), callPrefix])
    }

    /// These interactions, if they have not completed.
    public func liveInteractions(ids: [Int64]) throws -> [OpenInteraction] {
        try openInteractions("""
            select id, state::text, held_by, transfer_from, transfer_to from sightline.interactions
             where state <> 'completed' and id = any($1::bigint[]) order by id
            """, ["{" + ids.map(String.init).joined(separator: ",") + "}"])
    }

    private func openInteractions(_ sql: String, _ parameters: [String?]) throws -> [OpenInteraction] {
        try run { try connection.query(sql, parameters) }.rows("live interactions") { row in
            OpenInteraction(id: try row.value(0, "id", .int64), state: try row.value(1, "state", .state),
                            heldBy: try row.optional(2, "held_by", .text), transferFrom: try row.optional(3, "transfer_from", .int64),
                            transferTo: try row.optional(4, "transfer_to", .int64))
        }
    }
}
