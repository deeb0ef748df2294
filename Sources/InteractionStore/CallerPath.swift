import Foundation
import InteractionModel

/// The full path of a caller: every interaction linked by transfers, from any one of them.
public struct CallerPath: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var id: Int64
        public var transferFrom: Int64?
        public var state: InteractionState
        public var agent: String?
        public var queue: String?
        public var transitions: [Transition]
    }

    public struct Link: Sendable, Equatable {
        public var from: Int64
        public var to: Int64
        public var kind: TransferKind
        public var target: String
        public var status: String
        public var at: Date
        public var endedAt: Date?
    }

    public var callID: String
    public var root: Int64
    /// In creation order (parents before children).
    public var interactions: [Step]
    public var links: [Link]
}

/// One completed interaction with its statistics.
public struct HistoryEntry: Sendable, Equatable {
    public var id: Int64
    public var callID: String
    public var queue: String?
    public var agent: String?
    public var transferFrom: Int64?
    public var createdAt: Date
    public var completedAt: Date
    public var statistics: InteractionStatistics
}

extension InteractionStore {
    /// Restores the whole path (chain or tree of transfers) that `id` is part of; nil for an
    /// unknown id.
    public func callerPath(of id: Int64) throws -> CallerPath? {
        let r = try run {
            try connection.query("""
                with recursive up(id, transfer_from, depth) as (
                    select id, transfer_from, 0 from sightline.interactions where id = $1
                    union all
                    select i.id, i.transfer_from, up.depth + 1
                      from sightline.interactions i join up on i.id = up.transfer_from
                ), root as (
                    select id from up order by depth desc limit 1
                ), down(id) as (
                    select id from root
                    union all
                    select i.id from sightline.interactions i join down on i.transfer_from = down.id
                )
                select i.id, i.transfer_from, i.state::text, i.agent_id, i.queue_id, i.call_id,
                       (select id from root)
                  from sightline.interactions i where i.id in (select id from down) order by i.id
                """, [String(id)])
        }
        let found = try r.rows("caller path of interaction \(id)") { row in
            (id: try row.value(0, "id", .int64), transferFrom: try row.optional(1, "transfer_from", .int64),
             state: try row.value(2, "state", .state), agent: try row.optional(3, "agent_id", .text),
             queue: try row.optional(4, "queue_id", .text), callID: try row.value(5, "call_id", .text),
             root: try row.value(6, "root", .int64))
        }
        guard let first = found.first else { return nil }
        let steps = try found.map { f in
            CallerPath.Step(id: f.id, transferFrom: f.transferFrom, state: f.state, agent: f.agent, queue: f.queue,
                            transitions: try transitions(of: f.id))
        }
        let ids = steps.map { String($0.id) }.joined(separator: ",")
        let l = try run {
            try connection.query("""
                select original_id, new_id, kind, target, status, \(sqlMicros("started_at")), \(sqlMicros("ended_at"))
                  from sightline.transfers where new_id = any($1::bigint[]) order by id
                """, ["{\(ids)}"])
        }
        let links = try l.rows("transfers of the caller path of interaction \(id)") { row in
            CallerPath.Link(from: try row.value(0, "original_id", .int64), to: try row.value(1, "new_id", .int64),
                            kind: try row.value(2, "kind", .transferKind), target: try row.value(3, "target", .text),
                            status: try row.value(4, "status", .text), at: try row.value(5, "started_at", .time),
                            endedAt: try row.optional(6, "ended_at", .time))
        }
        return CallerPath(callID: first.callID, root: first.root, interactions: steps, links: links)
    }

    /// Recently completed interactions, newest first. Rows whose times are not finite (written
    /// around the life-cycle functions) are left out: `infinity` would sort first and keep the
    /// list failing.
    /// `queues` (nil: every queue) limits the list to those queues, on top of `queue`.
    public func history(limit: Int = 50, queue: String? = nil, queues: [String]? = nil) throws -> [HistoryEntry] {
        let r = try run {
            try connection.query("""
                select h.interaction_id, h.call_id, h.queue_id, h.agent_id, h.transfer_from,
                       \(sqlMicros("h.created_at")), \(sqlMicros("h.completed_at")), \(statisticsColumns("h"))
                  from sightline.interaction_history h
                 where ($2::text is null or h.queue_id = $2) and ($3::text[] is null or h.queue_id = any($3::text[]))
                   and isfinite(h.completed_at) and isfinite(h.created_at)
                 order by h.completed_at desc, h.interaction_id desc limit $1
                """, [String(limit), queue, queues.map(pgArray)])
        }
        return try r.rows("sightline.interaction_history") { row in
            HistoryEntry(
                id: try row.value(0, "interaction_id", .int64), callID: try row.value(1, "call_id", .text),
                queue: try row.optional(2, "queue_id", .text), agent: try row.optional(3, "agent_id", .text),
                transferFrom: try row.optional(4, "transfer_from", .int64),
                createdAt: try row.value(5, "created_at", .time), completedAt: try row.value(6, "completed_at", .time),
                statistics: try row.statistics(from: 7))
        }
    }
}
