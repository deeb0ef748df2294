import Foundation

/// A queue as configured in the store.
public struct QueueConfig: Sendable, Equatable {
    public var id: String
    public var name: String
    public var serviceLevelSeconds: Int
    public var serviceLevelTargetPercent: Int
    public var waitWarningSeconds: Int
    public var waitAlarmSeconds: Int
    public var holdAlarmSeconds: Int
    /// The service-level formula's choices (README, "Service level"; computed by SQL only).
    public var abandonsInDenominator: Bool
    public var excludeShortAbandons: Bool
    public var shortAbandonSeconds: Int
    /// Today's abandon rate at or above these percentages puts the queue in warning / alarm
    /// (nil: not judged).
    public var abandonWarningPercent: Int?
    public var abandonAlarmPercent: Int?

    public init(id: String, name: String, serviceLevelSeconds: Int = 20, serviceLevelTargetPercent: Int = 80,
                waitWarningSeconds: Int = 30, waitAlarmSeconds: Int = 60, holdAlarmSeconds: Int = 120,
                abandonsInDenominator: Bool = true, excludeShortAbandons: Bool = true, shortAbandonSeconds: Int = 5,
                abandonWarningPercent: Int? = nil, abandonAlarmPercent: Int? = nil) {
        self.abandonWarningPercent = abandonWarningPercent
        self.abandonAlarmPercent = abandonAlarmPercent
        self.abandonsInDenominator = abandonsInDenominator
        self.excludeShortAbandons = excludeShortAbandons
        self.shortAbandonSeconds = shortAbandonSeconds
        self.id = id
        self.name = name
        self.serviceLevelSeconds = serviceLevelSeconds
        self.serviceLevelTargetPercent = serviceLevelTargetPercent
        self.waitWarningSeconds = waitWarningSeconds
        self.waitAlarmSeconds = waitAlarmSeconds
        self.holdAlarmSeconds = holdAlarmSeconds
    }
}

public struct AgentConfig: Sendable, Equatable {
    public var id: String
    public var name: String
    public var queues: [String]
    public var isVoiceApplication: Bool

    public init(id: String, name: String, queues: [String] = [], isVoiceApplication: Bool = false) {
        self.id = id
        self.name = name
        self.queues = queues
        self.isVoiceApplication = isVoiceApplication
    }
}

/// The live view of one interaction that has not completed.
public struct LiveInteraction: Sendable, Equatable {
    public var id: Int64
    public var callID: String
    public var state: InteractionState
    public var queue: String?
    public var agent: String?
    public var heldBy: String?
    public var createdAt: Date
    public var stateSince: Date
    public var queuedAt: Date?
    public var version: Int
    public var transferFrom: Int64?
    /// Set on the original while a transfer it started is in progress.
    public var transfer: TransferInfo?

    /// A caller waiting in a queue (the original of a transfer in progress is not one: its
    /// caller waits on the new interaction).
    public var isWaiting: Bool { state == .queued && transfer == nil }
}

/// What one applied transition changed on the board.
public struct BoardChange: Sendable, Equatable {
    public var transition: Transition
    /// The interaction after the step; nil when it completed and left the board.
    public var interaction: LiveInteraction?
}

/// The live board: a projection of the transition log. Feed it transitions in log order; it
/// ignores ones it has already applied (by version), so replaying an overlap is harmless.
public struct LiveBoard: Sendable {
    public private(set) var interactions: [Int64: LiveInteraction] = [:]
    public var queues: [String: QueueConfig] = [:]
    public var agents: [String: AgentConfig] = [:]
    /// Presence of agents that ever changed it (others are `AgentPresence.initial`).
    public private(set) var presence: [String: AgentPresence] = [:]
    public var presenceReasons: [PresenceReason] = []
    /// The last position applied or skipped.
    public private(set) var position: LogPosition = .start

    public init() {}

    public mutating func setPosition(_ p: LogPosition) {
        if p > position { position = p }
    }

    /// Applies one transition. Returns nil when it changes nothing: already applied (version not
    /// newer), or a later step of an interaction the board never saw created (completed before the
    /// board was loaded).
    public mutating func apply(_ t: Transition) -> BoardChange? {
        setPosition(t.position)
        if let current = interactions[t.interactionID], t.version <= current.version { return nil }
        guard var live = interactions[t.interactionID] ?? Self.created(by: t) else { return nil }
        if t.from != nil {
            live.state = t.to
            live.agent = t.agent ?? live.agent
            live.queue = t.queue ?? live.queue
            live.heldBy = t.to == .held ? t.heldBy : nil
            live.stateSince = t.at
            live.version = t.version
            if t.to == .queued { live.queuedAt = t.at }
        }
        switch t.cause {
        case .transferStarted: live.transfer = t.transfer
        case .transferSucceeded, .transferFailed: live.transfer = nil
        default: break
        }
        guard t.to == .completed else {
            interactions[t.interactionID] = live
            return BoardChange(transition: t, interaction: live)
        }
        // Completed: it leaves the board. What it counts for is PostgreSQL's to say
        // (`sightline.figures`); the server only forwards those figures.
        interactions[t.interactionID] = nil
        return BoardChange(transition: t, interaction: nil)
    }

    /// Applies one row of the log: a transition as above; a presence change (its change is
    /// `presence(of:)`); an unreadable row changes nothing on the board but moves its position
    /// past the row.
    public mutating func apply(_ row: LogRow) -> BoardChange? {
        switch row {
        case .transition(let t):
            return apply(t)
        case .presence(let p):
            _ = apply(p)
            return nil
        case .unreadable(let position, _, _):
            setPosition(position)
            return nil
        }
    }

    /// Applies one presence change. Returns the agent's presence after it; nil when already
    /// applied (version not newer).
    public mutating func apply(_ p: PresenceChange) -> AgentPresence? {
        setPosition(p.position)
        let before = presence(of: p.agent)
        guard p.version > before.version else { return nil }
        let after = p.applied(to: before)
        presence[p.agent] = after
        return after
    }

    /// Installs presence read from the store (at start-up, as of the board's snapshot).
    public mutating func setPresence(_ agent: String, _ value: AgentPresence) {
        presence[agent] = value
    }

    public func presence(of agent: String) -> AgentPresence {
        presence[agent] ?? .initial
    }

    private static func created(by t: Transition) -> LiveInteraction? {
        guard t.from == nil, t.version == 1 else { return nil }
        return LiveInteraction(
            id: t.interactionID, callID: t.callID, state: t.to, queue: t.queue, agent: t.agent, heldBy: nil,
            createdAt: t.at, stateSince: t.at, queuedAt: nil, version: t.version, transferFrom: t.transferFrom,
            transfer: nil)
    }

    // MARK: Views

    /// Callers waiting in a queue, longest first.
    public func waiting(in queue: String) -> [LiveInteraction] {
        interactions.values.filter { $0.isWaiting && $0.queue == queue }
            .sorted { ($0.queuedAt ?? $0.stateSince, $0.id) < ($1.queuedAt ?? $1.stateSince, $1.id) }
    }

    /// Held calls, longest first.
    public var held: [LiveInteraction] {
        interactions.values.filter { $0.state == .held }.sorted { ($0.stateSince, $0.id) < ($1.stateSince, $1.id) }
    }

    /// Originals of transfers in progress.
    public var transfersInProgress: [LiveInteraction] {
        interactions.values.filter { $0.transfer != nil }.sorted { $0.id < $1.id }
    }

    /// What an agent is doing: its live interaction decides; without one, its presence (only a
    /// `ready` agent is available).
    public enum AgentActivity: String, Sendable, Equatable, CaseIterable {
        case available
        case notReady = "not_ready"
        case loggedOut = "logged_out"
        case reserved      // delivery pending
        case talking       // delivered, or waiting on a transfer it started
        case holding
        case wrapUp = "wrap_up"
    }

    public struct AgentStatus: Sendable, Equatable {
        public var agent: String
        public var activity: AgentActivity
        public var interaction: Int64?
        public var since: Date?
    }

    /// The state of every agent (voice applications aside), by what its live interactions say.
    public var agentStatuses: [AgentStatus] {
        var busy: [String: LiveInteraction] = [:]
        for i in interactions.values {
            guard let a = i.agent, i.state.involvesAgent || i.transfer != nil else { continue }
            if let other = busy[a], other.stateSince > i.stateSince { continue }
            busy[a] = i
        }
        return agents.values.filter { !$0.isVoiceApplication }.sorted { $0.id < $1.id }.map { agent in
            guard let i = busy[agent.id] else {
                let p = presence(of: agent.id)
                let activity: AgentActivity = p.state == .ready ? .available : p.state == .notReady ? .notReady : .loggedOut
                return AgentStatus(agent: agent.id, activity: activity, interaction: nil, since: p.since)
            }
            let activity: AgentActivity
            switch i.state {
            case .deliveryPending: activity = .reserved
            case .held: activity = .holding
            case .afterCallWork: activity = .wrapUp
            default: activity = .talking
            }
            return AgentStatus(agent: agent.id, activity: activity, interaction: i.id, since: i.stateSince)
        }
    }

    /// Longest current wait in a queue, in seconds at `now`.
    public func longestWait(in queue: String, now: Date) -> Double {
        waiting(in: queue).first.map { now.timeIntervalSince($0.queuedAt ?? $0.stateSince) } ?? 0
    }
}
