import Foundation
import InteractionModel

/// What a wallboard token sees on the live stream: per queue, counts and times only. No call id,
/// no caller path, no agent name, no per-call detail: a snapshot with the queues (their
/// configuration and today's figures from SQL), the waiting-depth samples and `wallboard` (the
/// counts of each queue), then a `wallboard` message whenever they change.
enum WallboardView {
    /// What a message depends on: the queue filter, and whether it is for a wallboard.
    struct Key: Hashable {
        var filter: LiveState.Filter
        var wallboard: Bool
    }

    struct Figures: Equatable {
        var waiting = 0
        var longestWaitingSince: Date?
        var ringing = 0
        var talking = 0
        var onHold = 0
        var longestHoldSince: Date?
        var wrapUp = 0
        var transferring = 0
        var agents = 0
    }

    /// The figures of every queue `filter` takes, from the board in one pass.
    static func figures(_ board: LiveBoard, filter: Set<String>?) -> [String: Figures] {
        var out: [String: Figures] = [:]
        for id in board.queues.keys where Subscription.wants(filter: filter, queue: id) { out[id] = Figures() }
        for i in board.interactions.values {
            guard let q = i.queue, var f = out[q] else { continue }
            if i.transfer != nil {
                f.transferring += 1
            } else {
                switch i.state {
                case .queued:
                    f.waiting += 1
                    let since = i.queuedAt ?? i.stateSince
                    if f.longestWaitingSince.map({ since < $0 }) ?? true { f.longestWaitingSince = since }
                case .deliveryPending: f.ringing += 1
                case .delivered: f.talking += 1
                case .held:
                    f.onHold += 1
                    if f.longestHoldSince.map({ i.stateSince < $0 }) ?? true { f.longestHoldSince = i.stateSince }
                case .afterCallWork: f.wrapUp += 1
                default: break
                }
            }
            out[q] = f
        }
        for a in board.agents.values where !a.isVoiceApplication {
            for q in Set(a.queues) { out[q]?.agents += 1 }
        }
        return out
    }

    /// `{"queue id": {...counts}, ...}` (the counted figures of the queues come in `figures`
    /// messages, from SQL, as for every client).
    static func figuresJSON(_ board: LiveBoard, filter: Set<String>?) -> String {
        let all = figures(board, filter: filter)
        var w = JSONWriter(capacity: 256 * all.count + 2)
        w.object { o in
            for (id, f) in all.sorted(by: { $0.key < $1.key }) {
                o.field(id) { w in
                    w.object { o in
                        o.field("waiting", int: f.waiting)
                        o.field("longestWaitingSince", date: f.longestWaitingSince)
                        o.field("ringing", int: f.ringing)
                        o.field("talking", int: f.talking)
                        o.field("onHold", int: f.onHold)
                        o.field("longestHoldSince", date: f.longestHoldSince)
                        o.field("wrapUp", int: f.wrapUp)
                        o.field("transferring", int: f.transferring)
                        o.field("agents", int: f.agents)
                    }
                }
            }
        }
        return w.text
    }

    static func figuresMessage(_ figures: String, position: LogPosition) -> String {
        "{\"type\":\"wallboard\",\"position\":\"\(position)\",\"queues\":" + figures + "}"
    }

    /// The snapshot a wallboard gets: the shape of every snapshot (so a page reads it the same
    /// way), with no agents and no interactions, and the figures.
    static func snapshot(_ job: SnapshotJob, filter: Set<String>?, figures: String) -> String {
        let board = job.board
        var w = JSONWriter(capacity: 1024 + figures.utf8.count)
        w.object { o in
            o.field("type", string: "snapshot")
            o.field("view", string: "wallboard")
            o.field("position", string: board.position.description)
            o.field("serverTime", date: job.now)
            o.field("database", string: job.databaseUp ? "up" : "down")
            if let staleSince = job.staleSince { o.field("staleSince", date: staleSince) }
            o.field("board") { w in
                w.object { o in
                    o.field("queues") { w in
                        w.array(board.queues.values.filter { Subscription.wants(filter: filter, queue: $0.id) }.sorted { $0.id < $1.id }) { w, q in
                            Wire.queue(q, into: &w)
                        }
                    }
                    o.field("agents", raw: "[]")
                    o.field("interactions", raw: "[]")
                    o.field("depth") { SnapshotJob.depth(job.depth, filter: filter, into: &$0) }
                    // The queues' figures from SQL (FIGURES of docs/protocol.md), without agents.
                    o.field("figures") { w in
                        guard let figures = job.figures else { w.raw("null"); return }
                        FiguresFeed.object(figures, queues: board.queueIDs(for: filter), agents: [], into: &w)
                    }
                }
            }
            o.field("wallboard", raw: figures)
        }
        return w.text
    }
}
