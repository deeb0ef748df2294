import Foundation

/// The place of a transition in the commit-ordered log: `(orderTx, id)`, compared in that order.
/// Rendered as `"<orderTx>.<id>"` for clients, who treat it as opaque.
public struct LogPosition: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var orderTx: UInt64
    public var id: Int64

    public init(orderTx: UInt64, id: Int64) {
        self.orderTx = orderTx
        self.id = id
    }

    public static let start = LogPosition(orderTx: 0, id: 0)

    public static func < (a: LogPosition, b: LogPosition) -> Bool {
        a.orderTx != b.orderTx ? a.orderTx < b.orderTx : a.id < b.id
    }

    public var description: String { "\(orderTx).\(id)" }

    /// Parses `"<orderTx>.<id>"`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count <= 20, parts[1].count <= 19,
              let tx = UInt64(parts[0]), let id = Int64(parts[1]), id >= 0 else { return nil }
        self.init(orderTx: tx, id: id)
    }
}

/// Why a transition was written.
public enum TransitionCause: String, Sendable, Codable, Equatable {
    case writer
    case transferStarted = "transfer_started"
    case transferCreated = "transfer_created"
    /// The new interaction of a queue transfer entering its target queue.
    case transferQueued = "transfer_queued"
    case transferSucceeded = "transfer_succeeded"
    case transferFailed = "transfer_failed"
}

/// One committed row of the transition log.
public struct Transition: Sendable, Equatable {
    public var position: LogPosition
    public var interactionID: Int64
    public var callID: String
    public var version: Int
    /// nil when the interaction was created by this transition.
    public var from: InteractionState?
    public var to: InteractionState
    public var at: Date
    public var agent: String?
    public var queue: String?
    public var heldBy: String?
    public var cause: TransitionCause
    /// For a creation: the interaction it was transferred from, if any.
    public var transferFrom: Int64?
    /// For `transfer_started`: the new interaction and the transfer's kind and target.
    public var transfer: TransferInfo?

    public init(position: LogPosition, interactionID: Int64, callID: String, version: Int,
                from: InteractionState?, to: InteractionState, at: Date, agent: String? = nil,
                queue: String? = nil, heldBy: String? = nil, cause: TransitionCause = .writer,
                transferFrom: Int64? = nil, transfer: TransferInfo? = nil) {
        self.position = position
        self.interactionID = interactionID
        self.callID = callID
        self.version = version
        self.from = from
        self.to = to
        self.at = at
        self.agent = agent
        self.queue = queue
        self.heldBy = heldBy
        self.cause = cause
        self.transferFrom = transferFrom
        self.transfer = transfer
    }
}

/// One row of the log as read: a transition, a presence change, or a row that could not be read
/// as either (a time that is not finite, a NULL or a value that does not parse, e.g. written
/// around the SQL functions). An unreadable row keeps its place in the stream, so a reader moves
/// past it.
public enum LogRow: Sendable, Equatable {
    case transition(Transition)
    case presence(PresenceChange)
    case unreadable(position: LogPosition, interactionID: Int64?, reason: String)

    public var position: LogPosition {
        switch self {
        case .transition(let t): return t.position
        case .presence(let p): return p.position
        case .unreadable(let position, _, _): return position
        }
    }

    /// The transition; nil for an unreadable row.
    public var transition: Transition? {
        if case .transition(let t) = self { return t }
        return nil
    }
}

public enum TransferKind: String, Sendable, Codable, CaseIterable, Equatable {
    case agent
    case queue
    case voiceApplication = "voice_application"
}

/// A transfer in progress, seen from its original interaction.
public struct TransferInfo: Sendable, Equatable {
    public var newInteraction: Int64
    public var kind: TransferKind
    public var target: String

    public init(newInteraction: Int64, kind: TransferKind, target: String) {
        self.newInteraction = newInteraction
        self.kind = kind
        self.target = target
    }
}
