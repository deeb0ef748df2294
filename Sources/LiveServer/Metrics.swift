import Foundation
import InteractionModel

/// The Prometheus text format of the live state at /metrics.
enum Metrics {
    static func prometheus(state: LiveState, clients: Int) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                let v = value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.6f", value)
                out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(v)\n"
            }
        }
        let c = state.counters
        let board = state.board
        let now = Date()
        metric("sightline_transitions_applied_total", "counter", "Transitions applied to the live board.", [("", Double(c.transitionsApplied))])
        metric("sightline_skipped_rows_total", "counter", "Log rows that could not be read and were skipped.", [("", Double(c.skippedRows))])
        metric("sightline_delta_frames_sent_total", "counter", "Delta frames queued to WebSocket clients.", [("", Double(c.deltaFramesSent))])
        metric("sightline_snapshots_sent_total", "counter", "Snapshots sent (first, resynchronisation, resume too old).", [("", Double(c.snapshotsSent))])
        metric("sightline_snapshots_built_total", "counter", "Snapshots encoded (one per queue filter per job).", [("", Double(c.snapshotsBuilt))])
        metric("sightline_resumes_total", "counter", "Clients resumed from a position without a snapshot.", [("", Double(c.resumes))])
        metric("sightline_resyncs_total", "counter", "Times a client fell behind and was resynchronised.", [("", Double(c.resyncs))])
        metric("sightline_slow_clients_closed_total", "counter", "Clients closed with 4429 (too slow).", [("", Double(c.slowClientsClosed))])
        metric("sightline_websocket_connections_opened_total", "counter", "WebSocket connections opened.", [("", Double(c.connectionsOpened))])
        metric("sightline_websocket_clients", "gauge", "WebSocket clients connected.", [("", Double(clients))])
        metric("sightline_http_requests_total", "counter", "HTTP requests to /api, /healthz and /metrics.", [("", Double(c.httpRequests))])
        metric("sightline_ingest_operations_total", "counter", "Ingest operations received.", [("", Double(c.ingestOperations))])
        metric("sightline_database_up", "gauge", "1 when the log tailer is connected to PostgreSQL.", [("", state.databaseUp ? 1 : 0)])
        metric("sightline_commit_to_board_seconds", "gauge", "Age of the newest transition when it reached the board.", [("", c.lastCommitLagSeconds)])
        metric("sightline_live_interactions", "gauge", "Interactions on the live board.", [("", Double(board.interactions.count))])
        let queues = board.queues.keys.sorted()
        let waits = board.waitingCounts()
        let oldest = board.oldestWaits()
        metric("sightline_queue_waiting", "gauge", "Callers waiting in a queue.",
               queues.map { ("queue=\"\($0)\"", Double(waits[$0] ?? 0)) })
        metric("sightline_queue_longest_wait_seconds", "gauge", "Longest current wait in a queue.",
               queues.map { ("queue=\"\($0)\"", oldest[$0].map { max(0, now.timeIntervalSince($0)) } ?? 0) })
        metric("sightline_queue_service_level_percent", "gauge", "Answered within the threshold today, percent of offered minus short abandons.",
               queues.compactMap { q in board.queueToday[q]?.serviceLevelPercent.map { ("queue=\"\(q)\"", $0) } })
        metric("sightline_queue_offered_today", "gauge", "Interactions completed today that waited in the queue.",
               queues.map { ("queue=\"\($0)\"", Double(board.queueToday[$0]?.offered ?? 0)) })
        metric("sightline_queue_abandoned_today", "gauge", "Abandoned today.",
               queues.map { ("queue=\"\($0)\"", Double(board.queueToday[$0]?.abandoned ?? 0)) })
        metric("sightline_held_calls", "gauge", "Calls on hold.", [("", Double(board.interactions.values.filter { $0.state == .held }.count))])
        let statuses = Dictionary(grouping: board.agentStatuses, by: \.activity)
        metric("sightline_agents", "gauge", "Agents by activity.",
               [LiveBoard.AgentActivity.available, .reserved, .talking, .holding, .wrapUp].map {
                   ("activity=\"\($0.rawValue)\"", Double(statuses[$0]?.count ?? 0))
               })
        return out
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
