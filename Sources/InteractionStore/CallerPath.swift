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
        guard r.rowCount > 0 else { return nil }
        var steps: [CallerPath.Step] = []
        for i in 0..<r.rowCount {
            let sid = r.int64(i, 0)!
            steps.append(CallerPath.Step(
                id: sid, transferFrom: r.int64(i, 1), state: InteractionState(rawValue: r.string(i, 2)!)!,
                agent: r.string(i, 3), queue: r.string(i, 4), transitions: try transitions(of: sid)))
        }
        let ids = steps.map { String($0.id) }.joined(separator: ",")
        let l = try run {
            try connection.query("""
                select original_id, new_id, kind, target, status,
                       (extract(epoch from started_at) * 1000000)::bigint,
                       (extract(epoch from ended_at) * 1000000)::bigint
                  from sightline.transfers where new_id = any($1::bigint[]) order by id
                """, ["{\(ids)}"])
        }
        let links = (0..<l.rowCount).map { i in
            CallerPath.Link(from: l.int64(i, 0)!, to: l.int64(i, 1)!, kind: TransferKind(rawValue: l.string(i, 2)!)!,
                            target: l.string(i, 3)!, status: l.string(i, 4)!,
                            at: Date(timeIntervalSince1970: Double(l.int64(i, 5)!) / 1_000_000),
                            endedAt: l.int64(i, 6).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) })
        }
        return CallerPath(callID: r.string(0, 5)!, root: r.int64(0, 6)!, interactions: steps, links: links)
    }

    /// Recently completed interactions, newest first.
    public func history(limit: Int = 50, queue: String? = nil) throws -> [HistoryEntry] {
        let r = try run {
            try connection.query("""
                select interaction_id, call_id, queue_id, agent_id, transfer_from,
                       (extract(epoch from created_at) * 1000000)::bigint,
                       (extract(epoch from completed_at) * 1000000)::bigint,
                       wait_seconds, talk_seconds, hold_seconds, hold_count, after_call_work_seconds, answered,
                       answered_within_service_level, abandoned, abandoned_from::text, short_abandon, transferred,
                       failed_transfer_leg
                  from sightline.interaction_history
                 where $2::text is null or queue_id = $2
                 order by completed_at desc, interaction_id desc limit $1
                """, [String(limit), queue])
        }
        return (0..<r.rowCount).map { i in
            HistoryEntry(
                id: r.int64(i, 0)!, callID: r.string(i, 1)!, queue: r.string(i, 2), agent: r.string(i, 3),
                transferFrom: r.int64(i, 4),
                createdAt: Date(timeIntervalSince1970: Double(r.int64(i, 5)!) / 1_000_000),
                completedAt: Date(timeIntervalSince1970: Double(r.int64(i, 6)!) / 1_000_000),
                statistics: InteractionStatistics(
                    waitSeconds: r.double(i, 7), talkSeconds: r.double(i, 8)!, holdSeconds: r.double(i, 9)!,
                    holdCount: r.int(i, 10)!, afterCallWorkSeconds: r.double(i, 11)!, answered: r.bool(i, 12)!,
                    answeredWithinServiceLevel: r.bool(i, 13), abandoned: r.bool(i, 14)!,
                    abandonedFrom: r.string(i, 15).flatMap(InteractionState.init(rawValue:)),
                    shortAbandon: r.bool(i, 16)!, transferred: r.bool(i, 17)!, failedTransferLeg: r.bool(i, 18)!))
        }
    }
}
