import Foundation

/// What an agent declared: the store's `sightline.presence_state` (sql/010_presence.sql, where
/// the rules live; this is only its value).
public enum PresenceState: String, Sendable, Equatable, CaseIterable {
    case loggedOut = "logged_out"
    case ready
    case notReady = "not_ready"
}

/// An agent's presence as the log says it is now.
public struct AgentPresence: Sendable, Equatable {
    public var state: PresenceState
    /// The not-ready reason code; nil unless `notReady`.
    public var reason: String?
    /// When this state began; nil for an agent that never changed presence (logged out).
    public var since: Date?
    /// When the agent last logged in; nil while logged out.
    public var loggedInSince: Date?
    /// Presence changes so far (0: never changed).
    public var version: Int

    public init(state: PresenceState, reason: String? = nil, since: Date? = nil, loggedInSince: Date? = nil, version: Int) {
        self.state = state
        self.reason = reason
        self.since = since
        self.loggedInSince = loggedInSince
        self.version = version
    }

    /// An agent that never changed presence.
    public static let initial = AgentPresence(state: .loggedOut, version: 0)
}

/// One committed row of the presence log (`sightline.presence_log`). Its position shares the
/// transition log's order: both logs are one stream.
public struct PresenceChange: Sendable, Equatable {
    public var position: LogPosition
    public var agent: String
    public var version: Int
    public var from: PresenceState
    public var fromReason: String?
    public var to: PresenceState
    public var reason: String?
    public var at: Date

    public init(position: LogPosition, agent: String, version: Int, from: PresenceState, fromReason: String? = nil,
                to: PresenceState, reason: String? = nil, at: Date) {
        self.position = position
        self.agent = agent
        self.version = version
        self.from = from
        self.fromReason = fromReason
        self.to = to
        self.reason = reason
        self.at = at
    }

    /// The presence after this change, given the one before it.
    public func applied(to before: AgentPresence) -> AgentPresence {
        let loggedInSince: Date?
        switch (before.state, to) {
        case (_, .loggedOut): loggedInSince = nil
        case (.loggedOut, _): loggedInSince = at
        default: loggedInSince = before.loggedInSince
        }
        return AgentPresence(state: to, reason: reason, since: at, loggedInSince: loggedInSince, version: version)
    }
}

/// A not-ready reason of the configured list (`sightline.presence_reasons`).
public struct PresenceReason: Sendable, Equatable {
    public var code: String
    public var name: String

    public init(code: String, name: String) {
        self.code = code
        self.name = name
    }
}
