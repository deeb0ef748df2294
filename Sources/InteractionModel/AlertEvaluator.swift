import Foundation

/// The state of the live stream, for `stream_stale`.
public struct StreamHealth: Sendable, Equatable {
    public var databaseUp: Bool
    /// Seconds since the log tailer last reported (it does at least once a second when well).
    public var tailerSilentSeconds: Double

    public init(databaseUp: Bool, tailerSilentSeconds: Double) {
        self.databaseUp = databaseUp
        self.tailerSilentSeconds = tailerSilentSeconds
    }
}

/// A queue's figures over an alert window, as PostgreSQL computed them
/// (`sightline.alert_window_figures`: the same definitions as every other figure).
public struct WindowFigures: Sendable, Equatable {
    public var offered: Int
    public var serviceLevelPercent: Double?
    public var abandonPercent: Double?

    public init(offered: Int, serviceLevelPercent: Double?, abandonPercent: Double?) {
        self.offered = offered
        self.serviceLevelPercent = serviceLevelPercent
        self.abandonPercent = abandonPercent
    }
}

/// Evaluates the alert rules over the board: a value with no I/O and no clock (`now` is an
/// argument). Each alert goes pending when its breach starts, fires once the breach has lasted
/// `for`, and resolves once the value has been back past `clear` (hysteresis) for `clearFor`.
/// `evaluate` returns the decisions (firing and resolved events) in a stable order.
public struct AlertEvaluator: Sendable {
    struct Tracker: Sendable {
        var pendingSince: Date?
        var firing: Alert?
        var clearingSince: Date?
    }

    /// One rule's verdict on one key at one evaluation.
    struct Observation {
        var settings: RuleSettings
        var breached: Bool
        /// Past the clear bound (a firing alert may resolve).
        var cleared: Bool
        var summary: String
        var figures: [String: Double]
        var agent: String?
    }

    public private(set) var configuration: AlertConfiguration
    private var trackers: [AlertKey: Tracker] = [:]
    public private(set) var evaluations = 0

    public init(configuration: AlertConfiguration) {
        self.configuration = configuration
    }

    /// Alerts that fire now, in key order.
    public var firing: [Alert] {
        trackers.sorted { $0.key < $1.key }.compactMap { $0.value.firing }
    }

    /// Alerts that were firing when the server stopped (from the outbox): they go on firing,
    /// with the same ids, until their breach ends.
    public mutating func restore(_ alerts: [Alert]) {
        for alert in alerts where alert.state == .firing {
            trackers[alert.key] = Tracker(pendingSince: alert.since, firing: alert, clearingSince: nil)
        }
    }

    /// Evaluates every rule over `board` at `now`. `windows` holds, per window length in seconds
    /// (`windowLengths`), the figures of each queue over that window; a window rule whose figures
    /// are not there (not read yet) neither fires nor resolves.
    public mutating func evaluate(board: LiveBoard, stream: StreamHealth, windows: [Double: [String: WindowFigures]] = [:],
                                  now: Date) -> [AlertEvent] {
        evaluations += 1
        let observations = observe(board: board, stream: stream, windows: windows, now: now)
        var events: [AlertEvent] = []
        for key in Set(trackers.keys).union(observations.keys).sorted() {
            let seen = observations[key]
            var t = trackers[key] ?? Tracker()
            if var alert = t.firing {
                guard seen == nil || seen!.cleared else {
                    t.clearingSince = nil
                    trackers[key] = t
                    continue
                }
                // Gone (call off hold, queue removed, rule disabled) or back past the clear bound.
                let clearing = t.clearingSince ?? now
                if seen == nil || now.timeIntervalSince(clearing) >= seen!.settings.clearForSeconds {
                    alert.state = .resolved
                    alert.resolvedAt = now
                    if let seen { alert.figures = seen.figures }
                    events.append(AlertEvent(alert: alert, at: now))
                    trackers[key] = nil
                } else {
                    t.clearingSince = clearing
                    trackers[key] = t
                }
            } else if let seen, seen.breached {
                let since = t.pendingSince ?? now
                if now.timeIntervalSince(since) >= seen.settings.forSeconds {
                    let alert = Alert(id: Alert.makeID(key, since: since), rule: key.rule, severity: seen.settings.severity,
                                      queue: key.queue, agent: seen.agent, interaction: key.interaction,
                                      summary: seen.summary, figures: seen.figures, since: since)
                    events.append(AlertEvent(alert: alert, at: now))
                    trackers[key] = Tracker(pendingSince: since, firing: alert, clearingSince: nil)
                } else {
                    trackers[key] = Tracker(pendingSince: since)
                }
            } else {
                trackers[key] = nil
            }
        }
        return events
    }

    /// The window lengths the rules of `queues` need figures for (none when both window rules are off).
    public func windowLengths(queues: some Sequence<QueueConfig>) -> Set<Double> {
        var out = Set<Double>()
        for queue in queues {
            for rule in [AlertRule.serviceLevel, .abandonRate] {
                let s = configuration.settings(rule, queue: queue)
                if s.enabled { out.insert(s.windowSeconds) }
            }
        }
        return out
    }

    private func observe(board: LiveBoard, stream: StreamHealth, windows: [Double: [String: WindowFigures]],
                         now: Date) -> [AlertKey: Observation] {
        var out: [AlertKey: Observation] = [:]
        func judge(_ rule: AlertRule, _ settings: RuleSettings, value: Double) -> (breached: Bool, cleared: Bool) {
            rule.breachesBelow
                ? (value < settings.threshold, value >= settings.clear)
                : (value > settings.threshold, value <= settings.clear)
        }

        let stale = configuration.settings(.streamStale, queue: nil)
        if stale.enabled {
            let silent = stream.tailerSilentSeconds
            var verdict = judge(.streamStale, stale, value: silent)
            if !stream.databaseUp { verdict = (true, false) }
            out[AlertKey(rule: .streamStale, queue: nil, interaction: nil)] = Observation(
                settings: stale, breached: verdict.breached, cleared: verdict.cleared,
                summary: stream.databaseUp
                    ? "The live stream is stale: the log tailer has not reported for \(Self.seconds(silent)) s."
                    : "The live stream is stale: the database is down; the board shows the last known state.",
                figures: ["tailerSilentSeconds": silent.rounded(), "databaseUp": stream.databaseUp ? 1 : 0,
                          "threshold": stale.threshold])
        }

        let waiting = board.alertWaitingFigures(now: now)
        let ready = board.readyAgentCounts()
        let heldByQueue = Dictionary(grouping: board.held, by: { $0.queue ?? "" })
        for queue in board.queues.values {
            let q = queue.id
            let name = queue.name.isEmpty ? q : queue.name
            let (count, longest) = waiting[q] ?? (0, 0)

            let wait = configuration.settings(.longestWait, queue: queue)
            if wait.enabled {
                let v = judge(.longestWait, wait, value: longest)
                out[AlertKey(rule: .longestWait, queue: q, interaction: nil)] = Observation(
                    settings: wait, breached: v.breached, cleared: v.cleared,
                    summary: "\(name): a caller has waited \(Self.seconds(longest)) s (over \(Self.seconds(wait.threshold)) s); \(count) waiting.",
                    figures: ["longestWaitSeconds": longest.rounded(), "waiting": Double(count), "threshold": wait.threshold])
            }

            let hold = configuration.settings(.heldCall, queue: queue)
            if hold.enabled {
                for call in heldByQueue[q] ?? [] {
                    let held = max(0, now.timeIntervalSince(call.stateSince))
                    let v = judge(.heldCall, hold, value: held)
                    guard v.breached || trackers[AlertKey(rule: .heldCall, queue: q, interaction: call.id)] != nil else { continue }
                    let agent = call.heldBy ?? call.agent
                    let agentName = agent.flatMap { board.agents[$0]?.name } ?? agent ?? "an agent"
                    out[AlertKey(rule: .heldCall, queue: q, interaction: call.id)] = Observation(
                        settings: hold, breached: v.breached, cleared: v.cleared,
                        summary: "\(name): \(agentName) has held interaction \(call.id) for \(Self.seconds(held)) s (over \(Self.seconds(hold.threshold)) s).",
                        figures: ["heldSeconds": held.rounded(), "threshold": hold.threshold], agent: agent)
                }
            }

            let noAgent = configuration.settings(.noAgentReady, queue: queue)
            if noAgent.enabled {
                let readyCount = ready[q] ?? 0
                let breached = count >= 1 && readyCount == 0
                out[AlertKey(rule: .noAgentReady, queue: q, interaction: nil)] = Observation(
                    settings: noAgent, breached: breached, cleared: !breached,
                    summary: "\(name): \(count) caller\(count == 1 ? "" : "s") waiting and no agent ready.",
                    figures: ["waiting": Double(count), "readyAgents": Double(readyCount)])
            }

            for rule in [AlertRule.serviceLevel, .abandonRate] {
                let s = configuration.settings(rule, queue: queue)
                guard s.enabled else { continue }
                let figures = windows[s.windowSeconds]?[q]
                let percent = rule == .serviceLevel ? figures?.serviceLevelPercent : figures?.abandonPercent
                guard let figures, let percent, figures.offered >= s.minOffered else {
                    // Too few calls in the window to judge: neither a breach nor a clear.
                    out[AlertKey(rule: rule, queue: q, interaction: nil)] = Observation(
                        settings: s, breached: false, cleared: false, summary: "", figures: [:])
                    continue
                }
                let v = judge(rule, s, value: percent)
                let minutes = Self.seconds(s.windowSeconds / 60)
                let what = rule == .serviceLevel
                    ? "service level \(Self.percent(percent)) % over the last \(minutes) min (target \(Self.percent(s.threshold)) %)"
                    : "abandon rate \(Self.percent(percent)) % over the last \(minutes) min (over \(Self.percent(s.threshold)) %)"
                out[AlertKey(rule: rule, queue: q, interaction: nil)] = Observation(
                    settings: s, breached: v.breached, cleared: v.cleared,
                    summary: "\(name): \(what), \(figures.offered) calls.",
                    figures: [rule == .serviceLevel ? "serviceLevelPercent" : "abandonPercent": (percent * 10).rounded() / 10,
                              "offered": Double(figures.offered), "threshold": s.threshold, "windowSeconds": s.windowSeconds])
            }
        }
        // A pending alert without a verdict this time (not enough data) keeps neither state.
        for (key, o) in out where !o.breached && !o.cleared && trackers[key]?.firing == nil {
            out[key] = nil
        }
        return out
    }

    static func seconds(_ s: Double) -> String { String(Int(s.rounded())) }
    static func percent(_ p: Double) -> String { String(format: "%.1f", p) }
}

extension LiveBoard {
    /// Callers waiting and the longest wait (seconds at `now`) per queue, in one pass.
    func alertWaitingFigures(now: Date) -> [String: (count: Int, longest: Double)] {
        var out: [String: (count: Int, longest: Double)] = [:]
        for i in interactions.values where i.isWaiting {
            guard let q = i.queue else { continue }
            let wait = max(0, now.timeIntervalSince(i.queuedAt ?? i.stateSince))
            let current = out[q] ?? (0, 0)
            out[q] = (current.count + 1, max(current.longest, wait))
        }
        return out
    }

    /// Agents available per queue (ready, and not busy with any live interaction).
    func readyAgentCounts() -> [String: Int] {
        var out: [String: Int] = [:]
        for status in agentStatuses where status.activity == .available {
            for q in agents[status.agent]?.queues ?? [] { out[q, default: 0] += 1 }
        }
        return out
    }
}
