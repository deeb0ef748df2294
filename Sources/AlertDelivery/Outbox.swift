import Foundation
import InteractionModel
import InteractionStore

/// The alert outbox in PostgreSQL (sql/020_alert_outbox.sql) behind a typed API. One owner
/// thread at a time, like the connection it uses.
public struct Outbox {
    public struct Delivery: Sendable, Equatable {
        public var seq: Int64
        public var eventID: String
        public var receiver: String
        public var alert: Alert
        public var decidedAt: Date
        public var attempts: Int
        public var nextAttemptAt: Date
    }

    public struct DeadLetter: Sendable, Equatable {
        public var eventID: String
        public var receiver: String
        public var alert: Alert
        public var attempts: Int
        public var lastError: String
        public var deadAt: Date
    }

    let connection: PostgresConnection

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// Writes `events` with a pending delivery for each of `receivers`, in one transaction. An
    /// event id already written is skipped (a decision is written once). `delivered` names, per
    /// event id, the receivers that already got it (sent while the database was unreachable):
    /// their rows are written as delivered.
    public func save(_ events: [AlertEvent], receivers: [String], delivered: [String: Set<String>] = [:]) throws {
        try connection.query("begin")
        do {
            for e in events {
                try connection.query("""
                    with e as (
                        insert into sightline.alert_events (event_id, alert_id, kind, rule, queue_id, alert, decided_at)
                        values ($1, $2, $3, $4, $5, $6::jsonb, $7::timestamptz)
                        on conflict (event_id) do nothing
                        returning seq)
                    insert into sightline.alert_deliveries (event_seq, receiver, status, attempts, finished_at)
                    select e.seq, r, case when r = any($9::text[]) then 'delivered' else 'pending' end,
                           case when r = any($9::text[]) then 1 else 0 end,
                           case when r = any($9::text[]) then now() end
                    from e, unnest($8::text[]) r
                    """, [e.id, e.alert.id, e.alert.state.rawValue, e.alert.rule.rawValue, e.alert.queue,
                          AlertJSON.text(e.alert), Timestamp.text(e.at), Self.textArray(receivers),
                          Self.textArray(Array(delivered[e.id] ?? []))])
            }
            try connection.query("commit")
        } catch {
            _ = try? connection.query("rollback")
            throw error
        }
    }

    /// The oldest pending delivery of `receiver` (due or not): later ones wait behind it, so a
    /// receiver gets each alert's decisions in order.
    public func head(of receiver: String) throws -> Delivery? {
        let r = try connection.query("""
            select e.seq, e.event_id, e.alert::text, e.decided_at, d.attempts,
                   extract(epoch from d.next_attempt_at)::float8, extract(epoch from e.decided_at)::float8
            from sightline.alert_deliveries d join sightline.alert_events e on e.seq = d.event_seq
            where d.receiver = $1 and d.status = 'pending'
            order by d.event_seq limit 1
            """, [receiver])
        guard r.rowCount == 1, let seq = r.int64(0, 0), let eventID = r.string(0, 1),
              let alert = r.string(0, 2).flatMap(AlertJSON.decode), let attempts = r.int(0, 4),
              let next = r.double(0, 5), let decided = r.double(0, 6) else { return nil }
        return Delivery(seq: seq, eventID: eventID, receiver: receiver, alert: alert,
                        decidedAt: Date(timeIntervalSince1970: decided), attempts: attempts,
                        nextAttemptAt: Date(timeIntervalSince1970: next))
    }

    public func delivered(_ d: Delivery, attempts: Int) throws {
        try connection.query("""
            update sightline.alert_deliveries set status = 'delivered', attempts = $3, finished_at = now(), last_error = null
            where event_seq = $1 and receiver = $2
            """, [String(d.seq), d.receiver, String(attempts)])
    }

    public func retry(_ d: Delivery, attempts: Int, after seconds: Double, error: String) throws {
        try connection.query("""
            update sightline.alert_deliveries
            set attempts = $3, next_attempt_at = now() + make_interval(secs => $4::float8), last_error = $5
            where event_seq = $1 and receiver = $2
            """, [String(d.seq), d.receiver, String(attempts), String(seconds), error])
    }

    public func dead(_ d: Delivery, attempts: Int, error: String) throws {
        try connection.query("""
            update sightline.alert_deliveries set status = 'dead', attempts = $3, finished_at = now(), last_error = $4
            where event_seq = $1 and receiver = $2
            """, [String(d.seq), d.receiver, String(attempts), error])
    }

    /// Removes settled decisions older than `keepSeconds` (sql/022 says which), at most `limit`;
    /// returns how many.
    @discardableResult
    public func trim(keepSeconds: Double, limit: Int = 10_000) throws -> Int {
        let r = try connection.query("select sightline.trim_alert_outbox(make_interval(secs => $1::float8), $2::integer)",
                                     [String(keepSeconds), String(limit)])
        return r.int(0, 0) ?? 0
    }

    /// Alerts whose latest decision is "firing", oldest first.
    public func activeAlerts() throws -> [Alert] {
        let r = try connection.query("select alert::text from sightline.active_alerts order by seq")
        return (0..<r.rowCount).compactMap { r.string($0, 0).flatMap(AlertJSON.decode) }
    }

    /// Pending deliveries per receiver.
    public func depth() throws -> [String: Int] {
        let r = try connection.query("""
            select receiver, count(*) from sightline.alert_deliveries where status = 'pending' group by receiver
            """)
        var out: [String: Int] = [:]
        for row in 0..<r.rowCount {
            if let name = r.string(row, 0), let n = r.int(row, 1) { out[name] = n }
        }
        return out
    }

    /// The newest dead letters first.
    public func deadLetters(limit: Int) throws -> [DeadLetter] {
        let r = try connection.query("""
            select e.event_id, d.receiver, e.alert::text, d.attempts, coalesce(d.last_error, ''),
                   extract(epoch from d.finished_at)::float8
            from sightline.alert_deliveries d join sightline.alert_events e on e.seq = d.event_seq
            where d.status = 'dead' order by d.finished_at desc, e.seq desc limit $1
            """, [String(limit)])
        return (0..<r.rowCount).compactMap { row in
            guard let id = r.string(row, 0), let receiver = r.string(row, 1),
                  let alert = r.string(row, 2).flatMap(AlertJSON.decode), let attempts = r.int(row, 3),
                  let error = r.string(row, 4), let at = r.double(row, 5) else { return nil }
            return DeadLetter(eventID: id, receiver: receiver, alert: alert, attempts: attempts, lastError: error,
                              deadAt: Date(timeIntervalSince1970: at))
        }
    }

    /// A PostgreSQL text[] literal.
    static func textArray(_ values: [String]) -> String {
        "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
