import Crypto
import Foundation
import InteractionModel

/// The JSON shape of an alert, the same for the board (`alert` messages, snapshots), webhooks,
/// the HTTP API and the outbox (docs/protocol.md, "alert").
public enum AlertJSON {
    public static func object(_ a: Alert) -> [String: Any] {
        var o: [String: Any] = [
            "id": a.id, "rule": a.rule.rawValue, "name": a.rule.alertName, "severity": a.severity.rawValue,
            "queue": a.queue as Any? ?? NSNull(), "agent": a.agent as Any? ?? NSNull(),
            "interaction": a.interaction.map { NSNumber(value: $0) } ?? NSNull(),
            "message": a.summary, "figures": a.figures, "since": Timestamp.text(a.since), "state": a.state.rawValue,
        ]
        o["resolvedAt"] = a.resolvedAt.map(Timestamp.text) ?? NSNull()
        return o
    }

    public static func text(_ a: Alert) -> String {
        encode(object(a))
    }

    /// Reads what `text` wrote (the outbox's `alert` column); nil when it is not an alert.
    public static func decode(_ text: String) -> Alert? {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let id = o["id"] as? String, let rule = (o["rule"] as? String).flatMap(AlertRule.init(rawValue:)),
              let severity = (o["severity"] as? String).flatMap(AlertSeverity.init(rawValue:)),
              let since = (o["since"] as? String).flatMap(Timestamp.parse),
              let state = (o["state"] as? String).flatMap(Alert.State.init(rawValue:)) else { return nil }
        let figures = (o["figures"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
        return Alert(id: id, rule: rule, severity: severity, queue: o["queue"] as? String, agent: o["agent"] as? String,
                     interaction: (o["interaction"] as? NSNumber)?.int64Value, summary: o["message"] as? String ?? "",
                     figures: figures, since: since, state: state,
                     resolvedAt: (o["resolvedAt"] as? String).flatMap(Timestamp.parse))
    }

    static func encode(_ value: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// RFC 3339 times with milliseconds, UTC.
public enum Timestamp {
    public static func text(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
            .timeSeparator(.colon).timeZone(separator: .omitted))
    }

    public static func parse(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
            .timeSeparator(.colon).timeZone(separator: .omitted)))
            ?? (try? Date(text, strategy: .iso8601))
    }
}

/// The body Alertmanager's API v2 takes (`POST /api/v2/alerts`): a list of alerts, each with
/// labels (identity), annotations, `startsAt`, `endsAt` and `generatorURL`.
public enum AlertmanagerPayload {
    /// A firing alert is sent with `endsAt = now + lease`; a resolved one with its resolution time.
    public static func alert(_ a: Alert, now: Date, leaseSeconds: Double, boardURL: String) -> [String: Any] {
        var labels = ["alertname": a.rule.alertName, "severity": a.severity.rawValue, "service": "sightline"]
        if let q = a.queue { labels["queue"] = q }
        if let agent = a.agent { labels["agent"] = agent }
        if let i = a.interaction { labels["interaction"] = String(i) }
        var annotations = ["summary": a.summary]
        for (name, value) in a.figures {
            annotations[name] = value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }
        let ends = a.state == .resolved ? (a.resolvedAt ?? now) : now.addingTimeInterval(leaseSeconds)
        return ["labels": labels, "annotations": annotations, "startsAt": Timestamp.text(a.since),
                "endsAt": Timestamp.text(ends), "generatorURL": generatorURL(boardURL: boardURL, queue: a.queue)]
    }

    public static func body(_ alerts: [Alert], now: Date, leaseSeconds: Double, boardURL: String) -> String {
        AlertJSON.encode(alerts.map { alert($0, now: now, leaseSeconds: leaseSeconds, boardURL: boardURL) })
    }

    /// The board filtered to the alert's queue.
    public static func generatorURL(boardURL: String, queue: String?) -> String {
        guard let queue, let escaped = queue.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "=", "+", "#"]))
        else { return boardURL }
        return boardURL + (boardURL.contains("?") ? "&" : "?") + "queues=" + escaped
    }
}

/// Webhooks as the Standard Webhooks specification has them: a JSON body
/// `{"type": "alert.firing"|"alert.resolved", "timestamp": ..., "data": ALERT}` and the headers
/// `webhook-id`, `webhook-timestamp` and `webhook-signature`.
public enum StandardWebhook {
    public static func body(_ event: AlertEvent) -> String {
        AlertJSON.encode([
            "type": event.alert.state == .firing ? "alert.firing" : "alert.resolved",
            "timestamp": Timestamp.text(event.at),
            "data": AlertJSON.object(event.alert),
        ] as [String: Any])
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each secret, space separated
    /// (several during a key rotation).
    public static func signature(id: String, timestamp: Int64, body: String, secrets: [String]) -> String {
        secrets.compactMap { secret -> String? in
            guard let key = AlertConfiguration.secretKey(secret) else { return nil }
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: key))
            return "v1," + Data(mac).base64EncodedString()
        }.joined(separator: " ")
    }

    public static func headers(id: String, timestamp: Int64, body: String, secrets: [String]) -> [(String, String)] {
        [("Content-Type", "application/json"), ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
         ("webhook-signature", signature(id: id, timestamp: timestamp, body: body, secrets: secrets))]
    }

    /// What a receiver does: true when one of the `v1` signatures in `header` matches `secret`.
    public static func verify(id: String, timestamp: Int64, body: String, header: String, secret: String) -> Bool {
        let expected = signature(id: id, timestamp: timestamp, body: body, secrets: [secret])
        guard !expected.isEmpty else { return false }
        return header.split(separator: " ").contains { Substring(expected) == $0 }
    }
}

/// When to try a failed delivery again.
public enum RetryPlan {
    /// Seconds until attempt `attempts + 1` after `attempts` failures, or nil when the schedule is
    /// spent (dead letter). The scheduled delay gets +-20 % jitter; a `Retry-After` longer than it
    /// wins (at most a day).
    public static func delay(afterFailures attempts: Int, schedule: [Double], retryAfter: Double?,
                             jitter: Double) -> Double? {
        guard attempts >= 1, attempts <= schedule.count else { return nil }
        let scheduled = schedule[attempts - 1] * (1 + 0.2 * max(-1, min(1, jitter)))
        return min(86400, max(scheduled, retryAfter ?? 0))
    }
}
