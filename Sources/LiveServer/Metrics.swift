import Foundation
import InteractionModel

/// Counters of the live service, rendered in the Prometheus text format at /metrics.
struct Metrics: Sendable {
    var transitionsApplied = 0
    var deltaFramesSent = 0
    var snapshotsSent = 0
    var resumes = 0
    var resyncs = 0
    var slowClientsClosed = 0
    var connectionsOpened = 0
    var httpRequests = 0
    var ingestOperations = 0
    var lastCommitLagSeconds = 0.0

    func prometheus(service: LiveService) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                let v = value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.6f", value)
                out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(v)\n"
            }
        }
        let board = service.boardForMetrics
        let now = Date()
        metric("sightline_transitions_applied_total", "counter", "Transitions applied to the live board.", [("", Double(transitionsApplied))])
        metric("sightline_delta_frames_sent_total", "counter", "Delta frames queued to WebSocket clients.", [("", Double(deltaFramesSent))])
        metric("sightline_snapshots_sent_total", "counter", "Snapshots sent (first, resynchronisation, resume too old).", [("", Double(snapshotsSent))])
        metric("sightline_resumes_total", "counter", "Clients resumed from a position without a snapshot.", [("", Double(resumes))])
        metric("sightline_resyncs_total", "counter", "Times a client fell behind and was resynchronised.", [("", Double(resyncs))])
        metric("sightline_slow_clients_closed_total", "counter", "Clients closed with 4429 (too slow).", [("", Double(slowClientsClosed))])
        metric("sightline_websocket_connections_opened_total", "counter", "WebSocket connections opened.", [("", Double(connectionsOpened))])
        metric("sightline_websocket_clients", "gauge", "WebSocket clients connected.", [("", Double(service.clientCount))])
        metric("sightline_http_requests_total", "counter", "HTTP requests to /api, /healthz and /metrics.", [("", Double(httpRequests))])
        metric("sightline_ingest_operations_total", "counter", "Ingest operations received.", [("", Double(ingestOperations))])
        metric("sightline_database_up", "gauge", "1 when the log tailer is connected to PostgreSQL.", [("", service.isDatabaseUp ? 1 : 0)])
        metric("sightline_commit_to_board_seconds", "gauge", "Age of the newest transition when it reached the board.", [("", lastCommitLagSeconds)])
        metric("sightline_live_interactions", "gauge", "Interactions on the live board.", [("", Double(board.interactions.count))])
        let queues = board.queues.keys.sorted()
        metric("sightline_queue_waiting", "gauge", "Callers waiting in a queue.",
               queues.map { ("queue=\"\($0)\"", Double(board.waiting(in: $0).count)) })
        metric("sightline_queue_longest_wait_seconds", "gauge", "Longest current wait in a queue.",
               queues.map { ("queue=\"\($0)\"", board.longestWait(in: $0, now: now)) })
        metric("sightline_queue_service_level_percent", "gauge", "Answered within the threshold today, percent of offered minus short abandons.",
               queues.compactMap { q in board.queueToday[q]?.serviceLevelPercent.map { ("queue=\"\(q)\"", $0) } })
        metric("sightline_queue_offered_today", "gauge", "Interactions completed today that waited in the queue.",
               queues.map { ("queue=\"\($0)\"", Double(board.queueToday[$0]?.offered ?? 0)) })
        metric("sightline_queue_abandoned_today", "gauge", "Abandoned today.",
               queues.map { ("queue=\"\($0)\"", Double(board.queueToday[$0]?.abandoned ?? 0)) })
        metric("sightline_held_calls", "gauge", "Calls on hold.", [("", Double(board.held.count))])
        let statuses = Dictionary(grouping: board.agentStatuses, by: \.activity)
        metric("sightline_agents", "gauge", "Agents by activity.",
               [LiveBoard.AgentActivity.available, .reserved, .talking, .holding, .wrapUp].map {
                   ("activity=\"\($0.rawValue)\"", Double(statuses[$0]?.count ?? 0))
               })
        return out
    }
}
