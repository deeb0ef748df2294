import AlertDelivery
import Foundation
import InteractionModel
import Prometheus

/// `/metrics`: the live state in Prometheus' text format, through swift-prometheus' registry.
/// The alert dispatcher registers its own metrics (deliveries, retries, dead letters, outbox
/// depth per receiver) in the same registry. Counters of the state are brought up to date at each
/// scrape (by the increase since the last one); gauges are set from the state.
///
/// Loop thread only, except `registry`, which is thread-safe.
final class ServerMetrics {
    let registry = PrometheusCollectorRegistry()
    /// Age of each transition (its time as the writer gave it) when it reached the board.
    let commitToBoard: ValueHistogram
    private var counted: [String: Int] = [:]
    private var queueGauges: [String: [Gauge]] = [:]

    init() {
        commitToBoard = registry.histogram(
            "sightline_commit_to_board_seconds",
            buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
            help: "Time from a transition (as its writer dated it) to its arrival on the live board.")
    }

    /// Records what `rows` took to reach the board at `now`.
    func rowsApplied(_ rows: [LogRow], now: Date) {
        for row in rows {
            if let t = row.transition { commitToBoard.record(max(0, now.timeIntervalSince(t.at))) }
        }
    }

    func render(state: LiveState, clients: Int) -> String {
        let c = state.counters
        let board = state.board
        let now = Date()
        count("sightline_transitions_applied_total", "Transitions applied to the live board.", c.transitionsApplied)
        count("sightline_skipped_rows_total", "Log rows that could not be read and were skipped.", c.skippedRows)
        count("sightline_delta_frames_sent_total", "Delta frames queued to WebSocket clients.", c.deltaFramesSent)
        count("sightline_snapshots_sent_total", "Snapshots sent (first, resynchronisation, resume too old).", c.snapshotsSent)
        count("sightline_snapshots_built_total", "Snapshots encoded (one per queue filter per job).", c.snapshotsBuilt)
        count("sightline_resumes_total", "Clients resumed from a position without a snapshot.", c.resumes)
        count("sightline_resyncs_total", "Times a client fell behind and was resynchronised.", c.resyncs)
        count("sightline_slow_clients_closed_total", "Clients closed with 4429 (too slow).", c.slowClientsClosed)
        count("sightline_websocket_connections_opened_total", "WebSocket connections opened.", c.connectionsOpened)
        count("sightline_http_requests_total", "HTTP requests to /api, /healthz and /metrics.", c.httpRequests)
        count("sightline_ingest_operations_total", "Ingest operations received.", c.ingestOperations)
        count("sightline_alert_evaluations_total", "Evaluations of the alert rules over the board.", state.alerts.evaluations)

        gauge("sightline_websocket_clients", "WebSocket clients connected.", Double(clients))
        gauge("sightline_database_up", "1 when the log tailer is connected to PostgreSQL.", state.databaseUp ? 1 : 0)
        gauge("sightline_live_interactions", "Interactions on the live board.", Double(board.interactions.count))
        gauge("sightline_held_calls", "Calls on hold.", Double(board.interactions.values.filter { $0.state == .held }.count))
        let statuses = Dictionary(grouping: board.agentStatuses, by: \.activity)
        for activity in LiveBoard.AgentActivity.allCases {
            gauge("sightline_agents", "Agents by activity.", Double(statuses[activity]?.count ?? 0), [("activity", activity.rawValue)])
        }
        let firing = Dictionary(grouping: state.alerts.firing, by: \.rule)
        for rule in AlertRule.allCases {
            gauge("sightline_alerts_firing", "Alerts firing now, by rule.", Double(firing[rule]?.count ?? 0), [("rule", rule.rawValue)])
        }

        let waits = board.waitingCounts()
        let oldest = board.oldestWaits()
        for q in Set(queueGauges.keys).subtracting(board.queues.keys) {
            queueGauges[q]?.forEach(registry.unregisterGauge)
            queueGauges[q] = nil
        }
        for q in board.queues.keys.sorted() {
            // Today's counts as PostgreSQL counts them (sightline.figures, the queue's own
            // service-level formula); absent until the first read of the figures.
            let today = state.figures.today(ofQueue: q)
            var values: [(String, String, Double?)] = [
                ("sightline_queue_waiting", "Callers waiting in a queue.", Double(waits[q] ?? 0)),
                ("sightline_queue_longest_wait_seconds", "Longest current wait in a queue.",
                 oldest[q].map { max(0, now.timeIntervalSince($0)) } ?? 0),
                ("sightline_queue_offered_today", "Callers offered to the queue today (answered or abandoned after entering it).",
                 today?["offered"]),
                ("sightline_queue_abandoned_today", "Callers who abandoned after entering the queue today.", today?["abandoned"]),
            ]
            values.append(("sightline_queue_service_level_ratio",
                           "Service level today by the queue's formula (README, Service level), 0 to 1; absent before the first call.",
                           today?["serviceLevelPercent"].map { $0 / 100 }))
            var gauges: [Gauge] = []
            for (name, help, value) in values {
                let g = registry.gauge(name, [("queue", q)], help: help)
                if let value {
                    g.set(to: value)
                    gauges.append(g)
                } else {
                    registry.unregisterGauge(g)
                }
            }
            queueGauges[q] = gauges
        }
        return registry.emitToString()
    }

    /// Brings a counter up to `value` (the state's running count).
    private func count(_ name: String, _ help: String, _ value: Int) {
        let counter = registry.counter(name, help: help)
        let increase = value - (counted[name] ?? 0)
        if increase > 0 { counter.increment(by: Int64(increase)) }
        counted[name] = value
    }

    private func gauge(_ name: String, _ help: String, _ value: Double, _ labels: [(String, String)] = []) {
        registry.gauge(name, labels, help: help).set(to: value)
    }
}

extension LiveBoard {
    /// Callers waiting per queue, in one pass over the board.
    func waitingCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for i in interactions.values where i.isWaiting {
            if let q = i.queue { counts[q, default: 0] += 1 }
        }
        return counts
    }

    /// When the longest waiting caller of each queue started waiting, in one pass.
    func oldestWaits() -> [String: Date] {
        var oldest: [String: Date] = [:]
        for i in interactions.values where i.isWaiting {
            guard let q = i.queue else { continue }
            let since = i.queuedAt ?? i.stateSince
            if let o = oldest[q], o <= since { continue }
            oldest[q] = since
        }
        return oldest
    }
}
