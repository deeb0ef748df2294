import AlertDelivery
import Foundation
import InteractionModel
import LWS

/// Alert evaluation, driven by the tick: at most every `evaluationSeconds` (at least once a
/// second) the rules look at the board; what fires or resolves goes to the outbox
/// (`alertsDecided`) and, as `alert` messages, to every dashboard that watches the alert's queue.
extension LiveState {
    /// Alerts that were firing when the server last stopped (read from the outbox at start-up).
    mutating func restoreAlerts(_ firing: [Alert]) {
        alerts.restore(firing)
    }

    mutating func evaluateAlerts(now: Date) -> [Effect] {
        // Half a tick early is on time: with a 250 ms tick, a 1 s interval stays 1 s.
        guard now.timeIntervalSince(lastAlertEvaluation) >= alerts.configuration.evaluationSeconds - 0.15 else { return [] }
        lastAlertEvaluation = now
        var effects: [Effect] = []
        let lengths = alerts.windowLengths(queues: board.queues.values)
        if !lengths.isEmpty, !alertWindowsLoad.inFlight,
           now.timeIntervalSince(alertWindowsLoad.requestedAt) >= Self.alertFiguresSeconds {
            alertWindowsLoad = (true, now)
            effects.append(.loadAlertFigures(lengths))
        }
        let stream = StreamHealth(databaseUp: databaseUp, tailerSilentSeconds: max(0, now.timeIntervalSince(lastTailerContact)))
        let events = alerts.evaluate(board: board, stream: stream, windows: alertWindows, now: now)
        guard !events.isEmpty else { return effects }
        effects.append(.alertsDecided(events))
        for event in events {
            let a = event.alert
            effects.append(.log(a.state == .firing ? .warning : .info, "alert \(a.state.rawValue): \(a.rule.rawValue) \(a.summary) [\(a.id)]"))
            let message = OutgoingMessage("{\"type\":\"alert\",\"alert\":" + AlertJSON.text(a) + "}")
            for (connection, session) in sessions.sorted(by: { $0.key < $1.key })
            where session.subscription.isLive && !session.awaitingSnapshot && Self.shows(a, to: session) {
                effects.append(.send(connection, message))
            }
        }
        return effects
    }

    /// How often the window figures are read (`sightline.alert_window_figures`): the window rules
    /// judge minutes (`for` is 60 s by default), and the read costs as much as the board's own figures.
    static let alertFiguresSeconds: TimeInterval = 15

    /// A read of the window figures finished (nil: it failed; the last ones stay until the next).
    mutating func alertFiguresLoaded(_ loaded: [Double: [String: WindowFigures]]?) {
        alertWindowsLoad.inFlight = false
        if let loaded { alertWindows = loaded }
    }

    /// To a session: as to its filter (never wider than its token's queues), and to a wallboard
    /// only when it names no call or agent.
    static func shows(_ alert: Alert, to session: Session) -> Bool {
        shows(alert, to: session.subscription.queues) && (!session.isWallboard || (alert.agent == nil && alert.interaction == nil))
    }

    /// An alert of a queue goes to the dashboards that watch it; one without a queue (the stream
    /// itself) to every dashboard.
    static func shows(_ alert: Alert, to filter: Filter) -> Bool {
        alert.queue == nil || Subscription.wants(filter: filter, queue: alert.queue)
    }

    /// The firing alerts `filter` may see, as a JSON array.
    static func alertsJSON(_ alerts: [Alert], filter: Filter) -> String {
        "[" + alerts.filter { shows($0, to: filter) }.map(AlertJSON.text).joined(separator: ",") + "]"
    }
}
