import Foundation
import InteractionModel

/// The interaction store: the life cycle's SQL functions behind a typed Swift API.
///
/// Every write goes through `sightline.*` functions, the same ones an ACD or a person in psql
/// calls, so the rules have one enforcer. One store owns one connection and is used by one
/// thread at a time.
public final class InteractionStore {
    public let connection: PostgresConnection

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

    /// Runs `body` inside one transaction: all of it commits, or none of it.
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        try run { try connection.query("begin") }
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

    /// A call arrives: a new interaction in idle. Returns its id.
    @discardableResult
    public func createInteraction(callID: String, at: Date? = nil) throws -> Int64 {
        let r = try run { try connection.query("select sightline.create_interaction($1, $2)", [callID, at.map(sqlTime)]) }
        return r.int64(0, 0)!
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
        let logID = r.int64(0, 0)!
        return try run { try connection.query(Self.transitionSelect + " where t.id = $1", [String(logID)]) }
            .transitions().first!
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
        return r.int64(0, 0)!
    }

    public func upsertQueue(_ q: QueueConfig) throws {
        try run {
            try connection.query("select sightline.upsert_queue($1, $2, $3, $4, $5, $6, $7)", [
                q.id, q.name, String(q.serviceLevelSeconds), String(q.waitWarningSeconds),
                String(q.waitAlarmSeconds), String(q.holdAlarmSeconds), String(q.serviceLevelTargetPercent),
            ])
        }
    }

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
                       wait_alarm_seconds, hold_alarm_seconds from sightline.queues order by id
                """)
        }
        return (0..<r.rowCount).map { i in
            QueueConfig(id: r.string(i, 0)!, name: r.string(i, 1)!, serviceLevelSeconds: r.int(i, 2)!,
                        serviceLevelTargetPercent: r.int(i, 3)!, waitWarningSeconds: r.int(i, 4)!,
                        waitAlarmSeconds: r.int(i, 5)!, holdAlarmSeconds: r.int(i, 6)!)
        }
    }

    public func agents() throws -> [AgentConfig] {
        let r = try run { try connection.query("select id, name, array_to_json(queues)::text, kind from sightline.agents order by id") }
        return (0..<r.rowCount).map { i in
            let queues = (try? JSONDecoder().decode([String].self, from: Data(r.string(i, 2)!.utf8))) ?? []
            return AgentConfig(id: r.string(i, 0)!, name: r.string(i, 1)!, queues: queues,
                               isVoiceApplication: r.string(i, 3) == "voice_application")
        }
    }

    /// The log after `position`, in stream order, only rows of finished transactions (see the
    /// note on `sightline.transitions` in sql/001_schema.sql): no row can later appear before
    /// the last one returned.
    public func readLog(after position: LogPosition, limit: Int = 1000) throws -> [Transition] {
        try run {
            try connection.query(Self.transitionSelect + """
                 where (t.order_tx, t.id) > ($1::xid8, $2::bigint)
                   and t.order_tx < pg_snapshot_xmin(pg_current_snapshot())
                 order by t.order_tx, t.id limit $3
                """, [String(position.orderTx), String(position.id), String(limit)])
        }.transitions()
    }

    /// Every transition of one interaction, in version order.
    public func transitions(of id: Int64) throws -> [Transition] {
        try run {
            try connection.query(Self.transitionSelect + " where t.interaction_id = $1 order by t.version", [String(id)])
        }.transitions()
    }

    /// The live board as of a consistent snapshot, and the log position to tail from.
    ///
    /// Rows the snapshot already reflects may be read again by the tailer; the board skips them
    /// by version.
    public func loadBoard(dayStart: Date) throws -> LiveBoard {
        try run { try connection.query("begin isolation level repeatable read read only") }
        defer { _ = try? connection.query("rollback") }
        let xmin = try run { try connection.query("select pg_snapshot_xmin(pg_current_snapshot())::text") }.uint64(0, 0)!
        var board = LiveBoard(dayStart: dayStart)
        for q in try queues() { board.queues[q.id] = q }
        for a in try agents() { board.agents[a.id] = a }
        let live = try run {
            try connection.query(Self.transitionSelect + """
                 where t.interaction_id in (select id from sightline.interactions where state <> 'completed')
                 order by t.interaction_id, t.version
                """)
        }.transitions()
        for t in live { _ = board.apply(t) }
        let (queueToday, agentToday) = try today(since: dayStart)
        board.setToday(queues: queueToday, agents: agentToday, dayStart: dayStart)
        // Everything below xmin is in this snapshot; tail from there.
        board.setPosition(LogPosition(orderTx: xmin > 0 ? xmin - 1 : 0, id: Int64.max))
        return board
    }

    /// Today's counters per queue and per agent, from the completed history.
    public func today(since dayStart: Date) throws -> ([String: QueueToday], [String: AgentToday]) {
        let r = try run {
            try connection.query("""
                select queue_id, agent_id, answered, answered_within_service_level, abandoned, short_abandon,
                       transferred, talk_seconds, hold_seconds, after_call_work_seconds, wait_seconds
                from sightline.interaction_history where completed_at >= $1
                """, [sqlTime(dayStart)])
        }
        var queues: [String: QueueToday] = [:]
        var agents: [String: AgentToday] = [:]
        for i in 0..<r.rowCount {
            let s = InteractionStatistics(
                waitSeconds: r.double(i, 10), talkSeconds: r.double(i, 7)!, holdSeconds: r.double(i, 8)!,
                holdCount: 0, afterCallWorkSeconds: r.double(i, 9)!, answered: r.bool(i, 2)!,
                answeredWithinServiceLevel: r.bool(i, 3), abandoned: r.bool(i, 4)!, abandonedFrom: nil,
                shortAbandon: r.bool(i, 5)!, transferred: r.bool(i, 6)!, failedTransferLeg: false)
            if let q = r.string(i, 0) { queues[q, default: QueueToday()].add(s) }
            if let a = r.string(i, 1) { agents[a, default: AgentToday()].add(s) }
        }
        return (queues, agents)
    }

    /// The stored statistics of a completed interaction.
    public func statistics(of id: Int64) throws -> InteractionStatistics? {
        let r = try run {
            try connection.query("""
                select wait_seconds, talk_seconds, hold_seconds, hold_count, after_call_work_seconds, answered,
                       answered_within_service_level, abandoned, abandoned_from::text, short_abandon, transferred,
                       failed_transfer_leg
                from sightline.interaction_history where interaction_id = $1
                """, [String(id)])
        }
        guard r.rowCount == 1 else { return nil }
        return InteractionStatistics(
            waitSeconds: r.double(0, 0), talkSeconds: r.double(0, 1)!, holdSeconds: r.double(0, 2)!,
            holdCount: r.int(0, 3)!, afterCallWorkSeconds: r.double(0, 4)!, answered: r.bool(0, 5)!,
            answeredWithinServiceLevel: r.bool(0, 6), abandoned: r.bool(0, 7)!,
            abandonedFrom: r.string(0, 8).flatMap(InteractionState.init(rawValue:)),
            shortAbandon: r.bool(0, 9)!, transferred: r.bool(0, 10)!, failedTransferLeg: r.bool(0, 11)!)
    }

    // MARK: Internals

    static let transitionSelect = """
        select t.order_tx::text, t.id, t.interaction_id, i.call_id, t.version, t.from_state::text, t.to_state::text,
               (extract(epoch from t.at) * 1000000)::bigint, t.agent_id, t.queue_id, t.held_by, t.cause,
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

extension PostgresResult {
    /// Rows of `InteractionStore.transitionSelect`.
    func transitions() -> [Transition] {
        (0..<rowCount).map { i in
            let cause = TransitionCause(rawValue: string(i, 11)!) ?? .writer
            let related = int64(i, 12)
            var transfer: TransferInfo?
            if cause == .transferStarted, let related, let kind = string(i, 13).flatMap(TransferKind.init(rawValue:)) {
                transfer = TransferInfo(newInteraction: related, kind: kind, target: string(i, 14) ?? "")
            }
            return Transition(
                position: LogPosition(orderTx: uint64(i, 0)!, id: int64(i, 1)!),
                interactionID: int64(i, 2)!, callID: string(i, 3)!, version: int(i, 4)!,
                from: string(i, 5).flatMap(InteractionState.init(rawValue:)),
                to: InteractionState(rawValue: string(i, 6)!)!,
                at: Date(timeIntervalSince1970: Double(int64(i, 7)!) / 1_000_000),
                agent: string(i, 8), queue: string(i, 9), heldBy: string(i, 10), cause: cause,
                transferFrom: cause == .transferCreated ? related : nil, transfer: transfer)
        }
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
