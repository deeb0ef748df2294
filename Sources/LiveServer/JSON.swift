import Foundation
import InteractionModel
import InteractionStore
import LWS

/// Builds JSON text directly: the hot path (one delta, encoded once, shared by every client)
/// stays free of reflection and of per-client work.
struct JSONWriter {
    private(set) var text = ""

    init(capacity: Int = 256) { text.reserveCapacity(capacity) }

    mutating func raw(_ s: String) { text += s }

    mutating func string(_ s: String) { text += jsonString(s) }

    mutating func optional(_ s: String?) {
        if let s { string(s) } else { text += "null" }
    }

    mutating func number(_ n: Int64?) { text += n.map(String.init) ?? "null" }
    mutating func number(_ n: Int) { text += String(n) }

    mutating func number(_ d: Double?) {
        guard let d, d.isFinite else { text += "null"; return }
        text += String(format: "%.3f", d)
    }

    mutating func bool(_ b: Bool?) { text += b.map { $0 ? "true" : "false" } ?? "null" }

    mutating func date(_ d: Date?) {
        guard let d else { text += "null"; return }
        text += "\"" + isoTime(d) + "\""
    }

    /// `{"k": v, ...}` with fields written by `body` through `field`.
    mutating func object(_ body: (inout ObjectWriter) -> Void) {
        var o = ObjectWriter(writer: self)
        text = ""
        o.writer.text += "{"
        body(&o)
        o.writer.text += "}"
        self = o.writer
    }

    mutating func array<S: Sequence>(_ items: S, _ each: (inout JSONWriter, S.Element) -> Void) {
        text += "["
        var first = true
        for item in items {
            if !first { text += "," }
            first = false
            each(&self, item)
        }
        text += "]"
    }
}

struct ObjectWriter {
    var writer: JSONWriter
    private var first = true

    init(writer: JSONWriter) { self.writer = writer }

    mutating func key(_ k: String) {
        if !first { writer.raw(",") }
        first = false
        writer.raw("\"" + k + "\":")
    }

    mutating func field(_ k: String, _ body: (inout JSONWriter) -> Void) {
        key(k)
        body(&writer)
    }

    mutating func field(_ k: String, string v: String?) { key(k); writer.optional(v) }
    mutating func field(_ k: String, int v: Int64?) { key(k); writer.number(v) }
    mutating func field(_ k: String, int v: Int) { key(k); writer.number(v) }
    mutating func field(_ k: String, double v: Double?) { key(k); writer.number(v) }
    mutating func field(_ k: String, bool v: Bool?) { key(k); writer.bool(v) }
    mutating func field(_ k: String, date v: Date?) { key(k); writer.date(v) }
    mutating func field(_ k: String, raw v: String) { key(k); writer.raw(v) }
}

/// `2026-11-24T10:15:02.120Z`
func isoTime(_ date: Date) -> String {
    let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    // Floor division: before 1970 the milliseconds stay 0...999 (truncation gave ".-350").
    let whole = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
    var seconds = time_t(whole)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                  parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, Int(millis - whole * 1000))
}

/// The JSON shapes of docs/protocol.md and the HTTP API, one definition each.
enum Wire {
    /// `hidingTransferTarget`: the transfer's target is outside what the reader may see (a
    /// queue-scoped reader, a transfer to another queue or to an agent of other queues): it
    /// reads `null`.
    static func interaction(_ i: LiveInteraction, hidingTransferTarget: Bool = false, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", int: i.id)
            o.field("callId", string: i.callID)
            o.field("state", string: i.state.rawValue)
            o.field("queue", string: i.queue)
            o.field("agent", string: i.agent)
            o.field("heldBy", string: i.heldBy)
            o.field("createdAt", date: i.createdAt)
            o.field("stateSince", date: i.stateSince)
            o.field("queuedAt", date: i.queuedAt)
            o.field("version", int: i.version)
            o.field("transferFrom", int: i.transferFrom)
            o.field("transferTo", int: i.transfer?.newInteraction)
            o.field("transfer") { w in
                if let t = i.transfer {
                    w.object { o in
                        o.field("to", int: t.newInteraction)
                        o.field("kind", string: t.kind.rawValue)
                        o.field("target", string: hidingTransferTarget ? nil : t.target)
                    }
                } else {
                    w.raw("null")
                }
            }
        }
    }

    static func transition(_ t: Transition, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", int: t.position.id)
            o.field("interaction", int: t.interactionID)
            o.field("callId", string: t.callID)
            o.field("from", string: t.from?.rawValue)
            o.field("to", string: t.to.rawValue)
            o.field("at", date: t.at)
            o.field("agent", string: t.agent)
            o.field("queue", string: t.queue)
            o.field("heldBy", string: t.heldBy)
            o.field("cause", string: t.cause.rawValue)
            o.field("version", int: t.version)
        }
    }

    /// One delta of a `deltas` message.
    static func delta(_ c: BoardChange, hidingTransferTarget: Bool = false, into w: inout JSONWriter) {
        w.object { o in
            o.field("position", string: c.transition.position.description)
            o.field("transition") { transition(c.transition, into: &$0) }
            o.field("interaction") { w in
                if let i = c.interaction { interaction(i, hidingTransferTarget: hidingTransferTarget, into: &w) } else { w.raw("null") }
            }
        }
    }

    static func queue(_ q: QueueConfig, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", string: q.id)
            o.field("name", string: q.name)
            o.field("serviceLevelSeconds", int: q.serviceLevelSeconds)
            o.field("thresholds") { w in
                w.object { o in
                    o.field("waitWarningSeconds", int: q.waitWarningSeconds)
                    o.field("waitAlarmSeconds", int: q.waitAlarmSeconds)
                    o.field("holdAlarmSeconds", int: q.holdAlarmSeconds)
                    o.field("serviceLevelTargetPercent", int: q.serviceLevelTargetPercent)
                    if let warning = q.abandonWarningPercent { o.field("abandonWarningPercent", int: warning) }
                    if let alarm = q.abandonAlarmPercent { o.field("abandonAlarmPercent", int: alarm) }
                }
            }
            o.field("serviceLevel") { w in
                w.object { o in
                    o.field("answerWithinSeconds", int: q.serviceLevelSeconds)
                    o.field("abandonsInDenominator", bool: q.abandonsInDenominator)
                    o.field("excludeShortAbandons", bool: q.excludeShortAbandons)
                    o.field("shortAbandonSeconds", int: q.shortAbandonSeconds)
                    o.field("targetPercent", int: q.serviceLevelTargetPercent)
                }
            }
        }
    }

    /// An agent; `presence` nil for a voice application.
    static func agent(_ a: AgentConfig, presence: AgentPresence?, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", string: a.id)
            o.field("name", string: a.name)
            o.field("queues") { w in w.array(a.queues) { w, q in w.string(q) } }
            o.field("voiceApplication", bool: a.isVoiceApplication)
            o.field("presence") { w in
                if let presence { Wire.presence(presence, into: &w) } else { w.raw("null") }
            }
        }
    }

    /// A PRESENCE of docs/protocol.md.
    static func presence(_ p: AgentPresence, into w: inout JSONWriter) {
        w.object { o in
            o.field("state", string: p.state.rawValue)
            o.field("reason", string: p.reason)
            o.field("since", date: p.since)
            o.field("loggedInSince", date: p.loggedInSince)
            o.field("version", int: p.version)
        }
    }

    /// One presence change as the wire shows it (a delta's `presence`, the API's answer).
    static func presenceChange(_ p: PresenceChange, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", int: p.position.id)
            o.field("agent", string: p.agent)
            o.field("from", string: p.from.rawValue)
            o.field("fromReason", string: p.fromReason)
            o.field("to", string: p.to.rawValue)
            o.field("reason", string: p.reason)
            o.field("at", date: p.at)
            o.field("version", int: p.version)
        }
    }

    /// A presence delta of a `deltas` message.
    static func presenceDelta(_ p: PresenceChange, presence: AgentPresence, into w: inout JSONWriter) {
        w.object { o in
            o.field("position", string: p.position.description)
            o.field("presence") { presenceChange(p, into: &$0) }
            o.field("agent", string: p.agent)
            o.field("agentPresence") { Wire.presence(presence, into: &$0) }
        }
    }

    static func presenceReasons(_ reasons: [PresenceReason], into w: inout JSONWriter) {
        w.array(reasons) { w, r in
            w.object { o in
                o.field("code", string: r.code)
                o.field("name", string: r.name)
            }
        }
    }

    static func pathStep(_ s: CallerPath.Step, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", int: s.id)
            o.field("transferFrom", int: s.transferFrom)
            o.field("state", string: s.state.rawValue)
            o.field("agent", string: s.agent)
            o.field("queue", string: s.queue)
            o.field("transitions") { w in w.array(s.transitions) { w, t in transition(t, into: &w) } }
        }
    }

    static func path(_ p: CallerPath) -> String {
        var w = JSONWriter(capacity: 2048)
        w.object { o in
            o.field("callId", string: p.callID)
            o.field("root", int: p.root)
            o.field("interactions") { w in w.array(p.interactions) { w, s in pathStep(s, into: &w) } }
            o.field("links") { w in
                w.array(p.links) { w, l in
                    w.object { o in
                        o.field("from", int: l.from)
                        o.field("to", int: l.to)
                        o.field("kind", string: l.kind.rawValue)
                        o.field("target", string: l.target)
                        o.field("status", string: l.status)
                        o.field("at", date: l.at)
                        o.field("endedAt", date: l.endedAt)
                    }
                }
            }
        }
        return w.text
    }

    static func history(_ entries: [HistoryEntry]) -> String {
        var w = JSONWriter(capacity: 256 * max(entries.count, 1))
        w.object { o in
            o.field("interactions") { w in
                w.array(entries) { w, e in
                    w.object { o in
                        o.field("id", int: e.id)
                        o.field("callId", string: e.callID)
                        o.field("queue", string: e.queue)
                        o.field("agent", string: e.agent)
                        o.field("transferFrom", int: e.transferFrom)
                        o.field("createdAt", date: e.createdAt)
                        o.field("completedAt", date: e.completedAt)
                        let s = e.statistics
                        o.field("waitSeconds", double: s.waitSeconds)
                        o.field("talkSeconds", double: s.talkSeconds)
                        o.field("holdSeconds", double: s.holdSeconds)
                        o.field("holdCount", int: s.holdCount)
                        o.field("afterCallWorkSeconds", double: s.afterCallWorkSeconds)
                        o.field("answered", bool: s.answered)
                        o.field("answeredWithinServiceLevel", bool: s.answeredWithinServiceLevel)
                        o.field("abandoned", bool: s.abandoned)
                        o.field("abandonedFrom", string: s.abandonedFrom?.rawValue)
                        o.field("shortAbandon", bool: s.shortAbandon)
                        o.field("transferred", bool: s.transferred)
                        o.field("failedTransferLeg", bool: s.failedTransferLeg)
                    }
                }
            }
        }
        return w.text
    }
}
