import Foundation
import InteractionModel
import InteractionStore

/// When to re-read the figures from PostgreSQL, and what changed since the last read. A value,
/// owned by `LiveState`; the read itself (`sightline.live_figures`) runs on a database worker.
///
/// Reads happen at most once per `minimumSeconds`: after the log moved, when the current
/// interval (and so maybe the day) is over, every `idleSeconds` otherwise (presence times grow
/// while nothing is written), and until a first read succeeds. A read that takes long spaces
/// the next ones (at least 4 times its duration apart), so PostgreSQL spends at most a fifth of
/// one connection's time on them however busy the day.
struct FiguresFeed: Sendable {
    struct Update: Sendable, Equatable {
        /// A new interval, day, time zone or set of queues and agents: every entry is sent.
        var complete: Bool
        var queues: Set<String>
        var agents: Set<String>
    }

    var minimumSeconds: TimeInterval = 1
    var idleSeconds: TimeInterval = 30
    private(set) var current: LiveFigures?
    private var inFlight = false
    private var dirty = true
    private var lastRequest = Date.distantPast
    /// How long the last read took.
    private(set) var lastDuration: TimeInterval = 0

    /// The log moved (or queues and agents changed): the figures may have too.
    mutating func logMoved() {
        dirty = true
    }

    /// Whether to start a read now; if so, one is in flight until `loaded`.
    mutating func shouldLoad(now: Date) -> Bool {
        guard !inFlight else { return false }
        let elapsed = now.timeIntervalSince(lastRequest)
        guard elapsed >= max(minimumSeconds, 4 * lastDuration) else { return false }
        let periodOver = current.map { now >= $0.periods.intervalEnd } ?? false
        guard current == nil || dirty || periodOver || elapsed >= idleSeconds else { return false }
        inFlight = true
        dirty = false
        lastRequest = now
        return true
    }

    /// A read finished (nil: it failed; the next tick tries again). Returns what changed.
    mutating func loaded(_ figures: LiveFigures?, took duration: TimeInterval = 0) -> Update? {
        inFlight = false
        lastDuration = max(0, duration)
        guard let figures else {
            dirty = true
            return nil
        }
        let previous = current
        current = figures
        guard let previous,
              previous.periods.intervalStart == figures.periods.intervalStart,
              previous.periods.dayStart == figures.periods.dayStart,
              previous.periods.timeZone == figures.periods.timeZone,
              Set(previous.queues.keys) == Set(figures.queues.keys),
              Set(previous.agents.keys) == Set(figures.agents.keys)
        else {
            return Update(complete: true, queues: Set(figures.queues.keys), agents: Set(figures.agents.keys))
        }
        return Update(complete: false,
                      queues: Set(figures.queues.filter { previous.queues[$0.key] != $0.value }.keys),
                      agents: Set(figures.agents.filter { previous.agents[$0.key] != $0.value }.keys))
    }

    /// The numeric figures of today of a queue, as read last (nil before the first read).
    func today(ofQueue queue: String) -> [String: Double]? {
        guard let entry = current?.queues[queue],
              let object = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any],
              let today = object["today"] as? [String: Any] else { return nil }
        return today.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// The FIGURES object of docs/protocol.md with the entries of `queues` and `agents` (those
    /// the figures have), in id order.
    static func object(_ figures: LiveFigures, queues: [String], agents: [String], into w: inout JSONWriter) {
        let p = figures.periods
        w.object { o in
            o.field("timeZone", string: p.timeZone)
            o.field("interval") { w in
                w.object { o in
                    o.field("start", date: p.intervalStart)
                    o.field("end", date: p.intervalEnd)
                }
            }
            o.field("day") { w in
                w.object { o in
                    o.field("start", date: p.dayStart)
                    o.field("end", date: p.dayEnd)
                }
            }
            o.field("asOf", date: p.asOf)
            o.field("queues") { w in
                w.object { o in
                    for id in queues.sorted() { if let entry = figures.queues[id] { o.field(id, raw: entry) } }
                }
            }
            o.field("agents") { w in
                w.object { o in
                    for id in agents.sorted() { if let entry = figures.agents[id] { o.field(id, raw: entry) } }
                }
            }
        }
    }

    /// A `figures` message.
    static func message(_ figures: LiveFigures, queues: [String], agents: [String], complete: Bool, now: Date) -> String {
        var w = JSONWriter(capacity: 512 + (queues.count + agents.count) * 900)
        w.object { o in
            o.field("type", string: "figures")
            o.field("serverTime", date: now)
            o.field("complete", bool: complete)
            o.field("figures") { object(figures, queues: queues, agents: agents, into: &$0) }
        }
        return w.text
    }
}

extension LiveBoard {
    /// Ids of the queues a queue filter shows.
    func queueIDs(for filter: LiveState.Filter) -> [String] {
        queues.keys.filter { Subscription.wants(filter: filter, queue: $0) }
    }

    /// Ids of the person agents a queue filter shows (members of one of its queues).
    func agentIDs(for filter: LiveState.Filter) -> [String] {
        agents.values.filter { a in !a.isVoiceApplication && (filter == nil || a.queues.contains { filter!.contains($0) }) }
            .map(\.id)
    }
}
