import Foundation

/// The threshold rules the live server evaluates over the board (see README, "Alerts").
public enum AlertRule: String, Sendable, CaseIterable, Hashable, Comparable {
    /// The longest current wait of a queue is over `threshold` seconds.
    case longestWait = "longest_wait"
    /// A call has been on hold for over `threshold` seconds (one alert per held call, naming the agent).
    case heldCall = "held_call"
    /// The service level over the last `window` seconds is under `threshold` percent.
    case serviceLevel = "service_level"
    /// Callers wait in a queue and none of its agents is available.
    case noAgentReady = "no_agent_ready"
    /// The abandon rate over the last `window` seconds is over `threshold` percent.
    case abandonRate = "abandon_rate"
    /// The live stream is stale: the database is down, or the log tailer has not reported for
    /// over `threshold` seconds.
    case streamStale = "stream_stale"

    /// The `alertname` label (Prometheus style).
    public var alertName: String {
        switch self {
        case .longestWait: return "QueueLongestWaitHigh"
        case .heldCall: return "CallHeldTooLong"
        case .serviceLevel: return "QueueServiceLevelLow"
        case .noAgentReady: return "QueueNoAgentReady"
        case .abandonRate: return "QueueAbandonRateHigh"
        case .streamStale: return "LiveStreamStale"
        }
    }

    /// Breaches are values above the threshold, except for the service level (below).
    var breachesBelow: Bool { self == .serviceLevel }

    public static func < (a: AlertRule, b: AlertRule) -> Bool { a.rawValue < b.rawValue }
}

public enum AlertSeverity: String, Sendable, Equatable, CaseIterable {
    case warning
    case critical
}

/// One rule's settings as written in the configuration file; nil falls back to the defaults
/// section, then to what the queue's thresholds say (`RuleSettings.resolve`).
public struct RuleOverride: Sendable, Equatable {
    public var enabled: Bool?
    /// Seconds (waits, holds, stream lag) or percent (service level, abandon rate).
    public var threshold: Double?
    /// Hysteresis: a firing alert resolves only once the value is back past this bound
    /// (below it for waits and rates, above it for the service level).
    public var clear: Double?
    /// Seconds the breach must last before the alert fires.
    public var forSeconds: Double?
    /// Seconds the value must stay past `clear` before the alert resolves.
    public var clearForSeconds: Double?
    /// Service level and abandon rate: the window in seconds.
    public var windowSeconds: Double?
    /// Service level and abandon rate: calls the window needs before the rule judges.
    public var minOffered: Int?
    public var severity: AlertSeverity?

    public init(enabled: Bool? = nil, threshold: Double? = nil, clear: Double? = nil, forSeconds: Double? = nil,
                clearForSeconds: Double? = nil, windowSeconds: Double? = nil, minOffered: Int? = nil,
                severity: AlertSeverity? = nil) {
        self.enabled = enabled
        self.threshold = threshold
        self.clear = clear
        self.forSeconds = forSeconds
        self.clearForSeconds = clearForSeconds
        self.windowSeconds = windowSeconds
        self.minOffered = minOffered
        self.severity = severity
    }

    /// `self`'s fields, falling back to `other`'s.
    func over(_ other: RuleOverride?) -> RuleOverride {
        guard let other else { return self }
        return RuleOverride(enabled: enabled ?? other.enabled, threshold: threshold ?? other.threshold,
                            clear: clear ?? other.clear, forSeconds: forSeconds ?? other.forSeconds,
                            clearForSeconds: clearForSeconds ?? other.clearForSeconds,
                            windowSeconds: windowSeconds ?? other.windowSeconds, minOffered: minOffered ?? other.minOffered,
                            severity: severity ?? other.severity)
    }
}

/// One rule's settings in force for one queue (or for the stream).
public struct RuleSettings: Sendable, Equatable {
    public var enabled: Bool
    public var threshold: Double
    public var clear: Double
    public var forSeconds: Double
    public var clearForSeconds: Double
    public var windowSeconds: Double
    public var minOffered: Int
    public var severity: AlertSeverity

    /// Settings for `rule` on `queue` (nil: the stream rule): the queue's override, then the
    /// defaults section, then the built-in defaults below.
    ///
    /// | rule | threshold | clear | for | clearFor | severity |
    /// | --- | --- | --- | --- | --- | --- |
    /// | longest_wait | the queue's `waitAlarmSeconds` | 80 % of threshold | 0 | 0 | critical |
    /// | held_call | the queue's `holdAlarmSeconds` | threshold | 0 | 0 | warning |
    /// | service_level | the queue's `serviceLevelTargetPercent` | threshold + 5 | 60 | 0 | warning |
    /// | no_agent_ready | 1 caller | (none) | 10 | 5 | critical |
    /// | abandon_rate | the queue's `abandonAlarmPercent`, else 20 % | threshold - 5 | 60 | 0 | warning |
    /// | stream_stale | 10 s | threshold | 0 | 0 | critical |
    ///
    /// Service level and abandon rate look at the last 3600 s and judge from 5 offered calls.
    public static func resolve(_ rule: AlertRule, queue: QueueConfig?, override: RuleOverride) -> RuleSettings {
        let threshold: Double
        switch rule {
        case .longestWait: threshold = override.threshold ?? Double(queue?.waitAlarmSeconds ?? 60)
        case .heldCall: threshold = override.threshold ?? Double(queue?.holdAlarmSeconds ?? 120)
        case .serviceLevel: threshold = override.threshold ?? Double(queue?.serviceLevelTargetPercent ?? 80)
        case .noAgentReady: threshold = 1
        case .abandonRate: threshold = override.threshold ?? Double(queue?.abandonAlarmPercent ?? 20)
        case .streamStale: threshold = override.threshold ?? 10
        }
        var clear: Double
        switch rule {
        case .longestWait: clear = override.clear ?? threshold * 0.8
        case .serviceLevel: clear = override.clear ?? min(100, threshold + 5)
        case .abandonRate: clear = override.clear ?? max(0, threshold - 5)
        case .heldCall, .noAgentReady, .streamStale: clear = override.clear ?? threshold
        }
        // A clear bound on the wrong side of the threshold would resolve an alert the moment it
        // fires: it is held at the threshold instead.
        clear = rule.breachesBelow ? max(clear, threshold) : min(clear, threshold)
        let defaultFor: Double = [.serviceLevel, .abandonRate].contains(rule) ? 60 : rule == .noAgentReady ? 10 : 0
        return RuleSettings(
            enabled: override.enabled ?? true, threshold: threshold, clear: clear,
            forSeconds: override.forSeconds ?? defaultFor,
            clearForSeconds: override.clearForSeconds ?? (rule == .noAgentReady ? 5 : 0),
            windowSeconds: override.windowSeconds ?? 3600, minOffered: override.minOffered ?? 5,
            severity: override.severity ?? ([.longestWait, .noAgentReady, .streamStale].contains(rule) ? .critical : .warning))
    }
}

/// What a firing alert says. The queue is on every alert of a queue rule (a queue-scoped reader
/// filters on it); `agent` and `interaction` only on a held call.
public struct Alert: Sendable, Equatable {
    public enum State: String, Sendable, Equatable { case firing, resolved }

    /// Stable for the life of the alert: rule, queue, interaction and start time.
    public var id: String
    public var rule: AlertRule
    public var severity: AlertSeverity
    public var queue: String?
    public var agent: String?
    public var interaction: Int64?
    public var summary: String
    /// The figures the decision was made on (name -> value), e.g. `longestWaitSeconds`, `threshold`.
    public var figures: [String: Double]
    /// When the breach began (the start of the `for` period).
    public var since: Date
    public var state: State
    public var resolvedAt: Date?

    public init(id: String, rule: AlertRule, severity: AlertSeverity, queue: String?, agent: String?, interaction: Int64?,
                summary: String, figures: [String: Double], since: Date, state: State = .firing, resolvedAt: Date? = nil) {
        self.id = id
        self.rule = rule
        self.severity = severity
        self.queue = queue
        self.agent = agent
        self.interaction = interaction
        self.summary = summary
        self.figures = figures
        self.since = since
        self.state = state
        self.resolvedAt = resolvedAt
    }

    public var key: AlertKey { AlertKey(rule: rule, queue: queue, interaction: interaction) }

    /// `<rule>-<hash of queue and interaction>-<start in ms>`: the same alert always gets the
    /// same id, and the id holds only characters safe in a header.
    static func makeID(_ key: AlertKey, since: Date) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in "\(key.queue ?? "")\u{0}\(key.interaction.map(String.init) ?? "")".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        let ms = Int64((since.timeIntervalSince1970 * 1000).rounded())
        return "\(key.rule.rawValue)-\(String(repeating: "0", count: 16 - hex.count) + hex)-\(ms)"
    }
}

/// What identifies one alert over time: a rule on a queue (on a held call for `held_call`).
public struct AlertKey: Sendable, Hashable, Comparable {
    public var rule: AlertRule
    public var queue: String?
    public var interaction: Int64?

    public init(rule: AlertRule, queue: String?, interaction: Int64?) {
        self.rule = rule
        self.queue = queue
        self.interaction = interaction
    }

    public static func < (a: AlertKey, b: AlertKey) -> Bool {
        (a.rule, a.queue ?? "", a.interaction ?? 0) < (b.rule, b.queue ?? "", b.interaction ?? 0)
    }
}

/// A decision: an alert started firing, or resolved. `id` is stable (receivers deduplicate on it).
public struct AlertEvent: Sendable, Equatable {
    public var alert: Alert
    public var at: Date

    public init(alert: Alert, at: Date) {
        self.alert = alert
        self.at = at
    }

    public var id: String { alert.id + (alert.state == .firing ? ".firing" : ".resolved") }
}
