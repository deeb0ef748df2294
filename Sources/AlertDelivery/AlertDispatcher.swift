import Foundation
import InteractionModel
import InteractionStore
import Logging
import Prometheus

/// Writes alert decisions to the outbox and delivers them, off the event loop: one thread saves
/// the decisions (and renews, trims and sends directly while the database is down), and each
/// receiver has a delivery thread of its own, with its own PostgreSQL connection and HTTP client,
/// so a receiver that is slow or unreachable delays neither the event loop nor another receiver.
///
/// - Decisions (`submit`) are saved in order, then delivered per receiver in decision order: a
///   receiver's oldest pending delivery goes first, and the ones after it wait for it (so every
///   receiver gets each alert's firing before its resolution).
/// - A failure is retried on the receiver's schedule (+-20 % jitter, `Retry-After` honoured); after
///   the last retry, or at once on `410 Gone` (which also disables the receiver until restart), the
///   delivery is dead-lettered.
/// - Every `resendSeconds` every active alert goes to each Alertmanager again with a fresh
///   `endsAt = now + lease`, so Alertmanager resolves them by itself if this server dies. The
///   active alerts are kept in memory too, so the renewals go on while the database is down.
/// - While the database is unreachable (the stream-stale alert is decided exactly then),
///   decisions wait in memory and are sent to each receiver once, directly; when the database is
///   back they are written with those receivers marked delivered, and the rest go the usual way.
/// - After a restart it goes on from the outbox: pending deliveries are delivered.
///
/// Lifetime: `start()` once, `submit` from any thread, `stopAndJoin()` at shutdown.
public final class AlertDispatcher: @unchecked Sendable {
    // `condition` guards `decided`, `stopping` and `disabled`; everything else is touched only by
    // the saving thread.
    private let condition = NSCondition()
    private var decided: [AlertEvent] = []
    private var stopping = false
    /// Receivers that answered 410 Gone: nothing more goes to them until a restart.
    private var disabled = Set<String>()
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    private let workers: [ReceiverWorker]

    /// One receiver's delivery thread: woken when decisions were saved, or when its next retry
    /// is due.
    private final class ReceiverWorker: @unchecked Sendable {
        let receiver: AlertConfiguration.Receiver
        let condition = NSCondition()
        var poked = true     // guarded by `condition`
        let finished = DispatchSemaphore(value: 0)

        init(_ receiver: AlertConfiguration.Receiver) { self.receiver = receiver }

        func poke() {
            condition.lock()
            poked = true
            condition.signal()
            condition.unlock()
        }
    }

    private let conninfo: String
    private let configuration: AlertConfiguration
    private let boardURL: String
    private let logger: Logger
    private let metrics: Metrics

    struct Metrics {
        let registry: PrometheusCollectorRegistry

        func deliveries(_ receiver: String) -> Counter {
            registry.counter("sightline_alert_deliveries_total", [("receiver", receiver)], help: "Alert events a receiver accepted (2xx).")
        }
        func failures(_ receiver: String) -> Counter {
            registry.counter("sightline_alert_delivery_failures_total", [("receiver", receiver)], help: "Delivery attempts that failed (no answer or not 2xx); each is retried or dead-lettered.")
        }
        func retries(_ receiver: String) -> Counter {
            registry.counter("sightline_alert_delivery_retries_total", [("receiver", receiver)], help: "Delivery attempts after a failed one.")
        }
        func deadLetters(_ receiver: String) -> Counter {
            registry.counter("sightline_alert_dead_letters_total", [("receiver", receiver)], help: "Alert events given up after the last retry or a 410 Gone.")
        }
        func resends(_ receiver: String) -> Counter {
            registry.counter("sightline_alert_resends_total", [("receiver", receiver)], help: "Active alerts re-sent to Alertmanager to renew their lease.")
        }
        func depth(_ receiver: String) -> Gauge {
            registry.gauge("sightline_alert_outbox_depth", [("receiver", receiver)], help: "Alert events waiting in the outbox for a receiver.")
        }
        var unsaved: Gauge {
            registry.gauge("sightline_alert_unsaved_events", help: "Alert decisions not yet written to the outbox (database unreachable).")
        }
    }

    /// The alerts firing now (`alertID` -> alert): thread only.
    private var active: [String: Alert] = [:]

    /// `firing`: the alerts the outbox says are firing (restored at start-up).
    public init(conninfo: String, configuration: AlertConfiguration, boardURL: String, firing: [Alert] = [],
                registry: PrometheusCollectorRegistry, logger: Logger) {
        for alert in firing { active[alert.id] = alert }
        self.conninfo = conninfo
        self.configuration = configuration
        self.boardURL = configuration.boardURL ?? boardURL
        self.logger = logger
        self.metrics = Metrics(registry: registry)
        for r in configuration.receivers {
            for make in [metrics.deliveries, metrics.failures, metrics.retries, metrics.deadLetters, metrics.resends] { _ = make(r.name) }
            metrics.depth(r.name).set(to: 0)
        }
        metrics.unsaved.set(to: 0)
        workers = configuration.receivers.map(ReceiverWorker.init)
    }

    public func start() {
        precondition(!started, "AlertDispatcher.start() called twice")
        started = true
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "sightline-alerts"
        thread.start()
        for worker in workers {
            let deliveryThread = Thread { [self] in
                deliveries(worker)
                worker.finished.signal()
            }
            deliveryThread.name = "sightline-alerts-\(worker.receiver.name)".prefix(15).description
            deliveryThread.start()
        }
    }

    /// Decisions to write and deliver, in the order they were made.
    public func submit(_ events: [AlertEvent]) {
        guard !events.isEmpty else { return }
        condition.lock()
        decided += events
        condition.signal()
        condition.unlock()
    }

    /// Asks the thread to save what was decided (one last try) and stop; returns at once.
    public func requestStop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        for worker in workers { worker.poke() }
    }

    private var disabledReceivers: Set<String> {
        condition.lock()
        defer { condition.unlock() }
        return disabled
    }

    private var stopRequested: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Waits for the threads after `requestStop`; false when the saving thread did not stop
    /// within `timeout` (decisions not yet written are then lost). The delivery threads get what
    /// is left of `timeout`: one still waiting for a receiver leaves that delivery pending in the
    /// outbox, to be sent again (same event id) after a restart.
    public func join(timeout: TimeInterval) -> Bool {
        guard started else { return true }
        let deadline = DispatchTime.now() + timeout
        let saved = finished.wait(timeout: deadline) == .success
        for worker in workers { _ = worker.finished.wait(timeout: deadline) }
        return saved
    }

    /// `requestStop`, then `join`.
    public func stopAndJoin(timeout: TimeInterval = 10) -> Bool {
        requestStop()
        return join(timeout: timeout)
    }

    // MARK: The thread

    private func run() {
        let client = HTTPClient()
        var connection: PostgresConnection?
        var unsaved: [AlertEvent] = []
        var sentDirectly: [String: Set<String>] = [:]
        var nextResend = Date().addingTimeInterval(configuration.resendSeconds)
        var nextTrim = Date()
        var databaseRetryAt = Date.distantPast
        var wakeAt = Date()
        var warnedDown = false
        while true {
            condition.lock()
            while decided.isEmpty && !stopping && Date() < wakeAt {
                _ = condition.wait(until: wakeAt)
            }
            for event in decided {
                if event.alert.state == .firing { active[event.alert.id] = event.alert } else { active[event.alert.id] = nil }
            }
            unsaved += decided
            decided = []
            let stop = stopping
            condition.unlock()
            metrics.unsaved.set(to: Double(unsaved.count))

            let now = Date()
            wakeAt = now.addingTimeInterval(1)
            if connection == nil, now >= databaseRetryAt {
                do {
                    connection = try PostgresConnection(conninfo)
                    if warnedDown { logger.notice("alert outbox: database reachable again") }
                    warnedDown = false
                } catch {
                    if !warnedDown {
                        logger.warning("alert outbox: cannot reach the database (\(error)); \(unsaved.count) decisions wait in memory and are written once it is back")
                    }
                    warnedDown = true
                    databaseRetryAt = now.addingTimeInterval(2)
                }
            }
            if let conn = connection {
                do {
                    let outbox = Outbox(connection: conn)
                    if !unsaved.isEmpty {
                        try outbox.save(unsaved, receivers: configuration.receivers.map(\.name), delivered: sentDirectly)
                        unsaved = []
                        sentDirectly = [:]
                        metrics.unsaved.set(to: 0)
                        for worker in workers { worker.poke() }
                    }
                    if stop { break }
                    if now >= nextTrim {
                        nextTrim = now.addingTimeInterval(3600)
                        let trimmed = try outbox.trim(keepSeconds: configuration.retentionDays * 86_400)
                        if trimmed > 0 {
                            logger.info("alert outbox: trimmed \(trimmed) settled decisions older than \(configuration.retentionDays) days")
                        }
                    }
                    let depth = try outbox.depth()
                    for r in configuration.receivers { metrics.depth(r.name).set(to: Double(depth[r.name] ?? 0)) }
                } catch {
                    logger.warning("alert outbox: \(error); trying again in 2 s")
                    connection = nil
                    databaseRetryAt = Date().addingTimeInterval(2)
                }
            }
            if stop { break }
            if connection == nil {
                sendDirectly(unsaved, client: client, disabled: disabledReceivers, sent: &sentDirectly)
            }
            if Date() >= nextResend {
                resend(client: client, disabled: disabledReceivers)
                nextResend = Date().addingTimeInterval(configuration.resendSeconds)
            }
            wakeAt = min(wakeAt, nextResend)
            if stop { break }
        }
        if !unsaved.isEmpty {
            logger.warning("alert outbox: \(unsaved.count) alert decisions could not be written before stopping")
        }
    }

    /// A receiver's delivery thread: delivers what the outbox holds for it, oldest first, when
    /// woken (decisions saved) or when its head is due; reconnects after 2 s when the database
    /// is unreachable. Stops when asked, or for good after a 410 Gone.
    private func deliveries(_ worker: ReceiverWorker) {
        let client = HTTPClient()
        var connection: PostgresConnection?
        var wakeAt = Date()
        var failing = false
        while true {
            worker.condition.lock()
            while !worker.poked && Date() < wakeAt {
                _ = worker.condition.wait(until: wakeAt)
            }
            worker.poked = false
            worker.condition.unlock()
            if stopRequested || disabledReceivers.contains(worker.receiver.name) { return }
            // Pending deliveries are looked at once a second anyway (a retry that came due, rows
            // another server instance wrote).
            wakeAt = Date().addingTimeInterval(1)
            do {
                if connection == nil { connection = try PostgresConnection(conninfo) }
                if let due = try deliver(to: worker.receiver, outbox: Outbox(connection: connection!), client: client) {
                    wakeAt = min(wakeAt, due)
                }
                failing = false
            } catch {
                // Said once per outage; the saving thread also says when the database is down.
                if !failing {
                    logger.warning("alert receiver \(worker.receiver.name): cannot read its deliveries from the outbox (\(error)); retrying every 2 s")
                }
                failing = true
                connection = nil
                wakeAt = Date().addingTimeInterval(2)
            }
        }
    }

    /// Delivers what is due for `receiver`, oldest first; returns when its head is due next.
    private func deliver(to receiver: AlertConfiguration.Receiver, outbox: Outbox, client: HTTPClient) throws -> Date? {
        for _ in 0..<100 {
            guard !stopRequested, let head = try outbox.head(of: receiver.name) else { return nil }
            guard head.nextAttemptAt <= Date() else { return head.nextAttemptAt }
            let attempts = head.attempts + 1
            if attempts > 1 { metrics.retries(receiver.name).increment() }
            let outcome = send(head, to: receiver, client: client)
            switch outcome {
            case .success(let reply) where (200..<300).contains(reply.status):
                try outbox.delivered(head, attempts: attempts)
                metrics.deliveries(receiver.name).increment()
                continue
            case .success(let reply) where reply.status == 410:
                try outbox.dead(head, attempts: attempts, error: "410 Gone: the receiver asked for no more deliveries")
                metrics.failures(receiver.name).increment()
                metrics.deadLetters(receiver.name).increment()
                condition.lock()
                disabled.insert(receiver.name)
                condition.unlock()
                logger.error("alert receiver \(receiver.name) answered 410 Gone: it gets nothing more until the server restarts; event \(head.eventID) is dead-lettered (GET /api/alerts/dead-letters)")
                return nil
            default:
                metrics.failures(receiver.name).increment()
                let reason: String
                var retryAfter: Double?
                switch outcome {
                case .success(let reply):
                    reason = "HTTP \(reply.status): \(reply.body.prefix(200))"
                    retryAfter = reply.retryAfterSeconds
                case .failure(let error):
                    reason = error.message
                }
                if let delay = RetryPlan.delay(afterFailures: attempts, schedule: receiver.retrySeconds, retryAfter: retryAfter,
                                               jitter: Double.random(in: -1...1)) {
                    try outbox.retry(head, attempts: attempts, after: delay, error: reason)
                    logger.info("alert receiver \(receiver.name): event \(head.eventID) attempt \(attempts) failed (\(reason)); next in \(String(format: "%.1f", delay)) s")
                    return Date().addingTimeInterval(delay)
                }
                try outbox.dead(head, attempts: attempts, error: reason)
                metrics.deadLetters(receiver.name).increment()
                logger.error("alert receiver \(receiver.name): event \(head.eventID) failed \(attempts) times (\(reason)); dead-lettered, see GET /api/alerts/dead-letters")
            }
        }
        return Date()
    }

    private func send(_ d: Outbox.Delivery, to receiver: AlertConfiguration.Receiver, client: HTTPClient) -> Result<HTTPReply, HTTPClientError> {
        let now = Date()
        switch receiver.kind {
        case .alertmanager:
            let body = AlertmanagerPayload.body([d.alert], now: now, leaseSeconds: configuration.leaseSeconds, boardURL: boardURL)
            return client.post(Self.alertmanagerURL(receiver.url), headers: [("Content-Type", "application/json")],
                               body: body, timeout: receiver.timeoutSeconds)
        case .webhook:
            let body = StandardWebhook.body(AlertEvent(alert: d.alert, at: d.decidedAt))
            let headers = StandardWebhook.headers(id: d.eventID, timestamp: Int64(now.timeIntervalSince1970),
                                                  body: body, secrets: receiver.secrets)
            return client.post(receiver.url, headers: headers, body: body, timeout: receiver.timeoutSeconds)
        }
    }

    /// Decisions the outbox cannot hold yet (the database is unreachable), once to each receiver
    /// that has not got them; what fails waits for the outbox.
    private func sendDirectly(_ events: [AlertEvent], client: HTTPClient, disabled: Set<String>, sent: inout [String: Set<String>]) {
        for receiver in configuration.receivers where !disabled.contains(receiver.name) {
            for event in events where sent[event.id]?.contains(receiver.name) != true {
                let delivery = Outbox.Delivery(seq: 0, eventID: event.id, receiver: receiver.name, alert: event.alert,
                                               decidedAt: event.at, attempts: 0, nextAttemptAt: event.at)
                guard case .success(let reply) = send(delivery, to: receiver, client: client), (200..<300).contains(reply.status) else {
                    break  // in order: the rest waits behind this one
                }
                sent[event.id, default: []].insert(receiver.name)
                metrics.deliveries(receiver.name).increment()
            }
        }
    }

    /// Every active alert to every Alertmanager, with a fresh lease.
    private func resend(client: HTTPClient, disabled: Set<String>) {
        let receivers = configuration.receivers.filter { $0.kind == .alertmanager && !disabled.contains($0.name) }
        let active = self.active.values.sorted { $0.id < $1.id }
        guard !receivers.isEmpty, !active.isEmpty else { return }
        let body = AlertmanagerPayload.body(active, now: Date(), leaseSeconds: configuration.leaseSeconds, boardURL: boardURL)
        for receiver in receivers {
            switch client.post(Self.alertmanagerURL(receiver.url), headers: [("Content-Type", "application/json")],
                               body: body, timeout: receiver.timeoutSeconds) {
            case .success(let reply) where (200..<300).contains(reply.status):
                metrics.resends(receiver.name).increment(by: Int64(active.count))
            case .success(let reply):
                logger.warning("alert receiver \(receiver.name): re-sending \(active.count) active alerts got HTTP \(reply.status)")
            case .failure(let error):
                logger.warning("alert receiver \(receiver.name): re-sending \(active.count) active alerts failed: \(error)")
            }
        }
    }

    static func alertmanagerURL(_ base: String) -> String {
        if base.hasSuffix("/api/v2/alerts") { return base }
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/api/v2/alerts"
    }
}
