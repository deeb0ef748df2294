import Foundation

/// What the history of one completed interaction says, for statistics.
///
/// The same definitions are in `sightline.record_history` (sql/002_lifecycle.sql), which stores
/// them in PostgreSQL; a test drives both with the same interactions and compares.
public struct InteractionStatistics: Sendable, Equatable {
    /// First entering queued until first delivered (or until it was abandoned); nil if never queued.
    public var waitSeconds: Double?
    public var talkSeconds: Double
    public var holdSeconds: Double
    public var holdCount: Int
    public var afterCallWorkSeconds: Double
    public var answered: Bool
    /// nil when it was never delivered after waiting in a queue.
    public var answeredWithinServiceLevel: Bool?
    public var abandoned: Bool
    public var abandonedFrom: InteractionState?
    /// Abandoned less than `shortAbandonSeconds` after entering the queue (or after arriving).
    public var shortAbandon: Bool
    /// It started a transfer that succeeded.
    public var transferred: Bool
    /// It was the new interaction of a transfer that failed (not an abandon).
    public var failedTransferLeg: Bool

    public static let shortAbandonSeconds = 5.0

    public init(waitSeconds: Double?, talkSeconds: Double, holdSeconds: Double, holdCount: Int,
                afterCallWorkSeconds: Double, answered: Bool, answeredWithinServiceLevel: Bool?,
                abandoned: Bool, abandonedFrom: InteractionState?, shortAbandon: Bool,
                transferred: Bool, failedTransferLeg: Bool) {
        self.waitSeconds = waitSeconds
        self.talkSeconds = talkSeconds
        self.holdSeconds = holdSeconds
        self.holdCount = holdCount
        self.afterCallWorkSeconds = afterCallWorkSeconds
        self.answered = answered
        self.answeredWithinServiceLevel = answeredWithinServiceLevel
        self.abandoned = abandoned
        self.abandonedFrom = abandonedFrom
        self.shortAbandon = shortAbandon
        self.transferred = transferred
        self.failedTransferLeg = failedTransferLeg
    }

    /// - Parameters:
    ///   - transitions: every transition of one interaction in version order, ending in completed.
    ///   - serviceLevelSeconds: the threshold of the queue it waited in, if any.
    ///   - failedTransferLeg: it was the new interaction of a transfer that failed.
    public static func compute(transitions: [Transition], serviceLevelSeconds: Int?,
                               failedTransferLeg: Bool) -> InteractionStatistics {
        var firstQueued: Date?
        var firstDelivered: Date?
        var talk = 0.0, hold = 0.0, acw = 0.0
        var holds = 0
        var lastFrom: InteractionState?
        var transferred = false
        for (index, step) in transitions.enumerated() {
            if step.to == .queued, firstQueued == nil { firstQueued = step.at }
            if step.to == .delivered, firstDelivered == nil { firstDelivered = step.at }
            if step.to == .held { holds += 1 }
            if step.to == .completed { lastFrom = step.from }
            if step.cause == .transferSucceeded { transferred = true }
            guard index + 1 < transitions.count else { continue }
            let span = transitions[index + 1].at.timeIntervalSince(step.at)
            switch step.to {
            case .delivered: talk += span
            case .held: hold += span
            case .afterCallWork: acw += span
            default: break
            }
        }
        let createdAt = transitions.first?.at ?? Date(timeIntervalSince1970: 0)
        let completedAt = transitions.last?.at ?? createdAt
        let abandoned = firstDelivered == nil && !failedTransferLeg
        let wait = firstQueued.map { (firstDelivered ?? completedAt).timeIntervalSince($0) }
        var withinSL: Bool?
        if firstDelivered != nil, let wait, let serviceLevelSeconds {
            withinSL = wait <= Double(serviceLevelSeconds)
        }
        return InteractionStatistics(
            waitSeconds: wait, talkSeconds: talk, holdSeconds: hold, holdCount: holds,
            afterCallWorkSeconds: acw, answered: firstDelivered != nil,
            answeredWithinServiceLevel: withinSL, abandoned: abandoned,
            abandonedFrom: abandoned ? lastFrom : nil,
            shortAbandon: abandoned && completedAt.timeIntervalSince(firstQueued ?? createdAt) < shortAbandonSeconds,
            transferred: transferred, failedTransferLeg: failedTransferLeg)
    }
}

/// Counters for a queue today, from the statistics of completed interactions.
public struct QueueToday: Sendable, Equatable {
    /// Interactions completed today that waited in this queue (abandons included).
    public var offered = 0
    public var answered = 0
    public var answeredWithinServiceLevel = 0
    public var abandoned = 0
    public var shortAbandoned = 0
    public var transferred = 0
    public var talkSeconds = 0.0
    public var holdSeconds = 0.0
    public var afterCallWorkSeconds = 0.0
    /// Sum of waits of answered interactions (for the average speed of answer).
    public var answeredWaitSeconds = 0.0

    public init() {}

    public mutating func add(_ s: InteractionStatistics) {
        offered += 1
        if s.answered { answered += 1 }
        if s.answeredWithinServiceLevel == true { answeredWithinServiceLevel += 1 }
        if s.abandoned { abandoned += 1 }
        if s.shortAbandon { shortAbandoned += 1 }
        if s.transferred { transferred += 1 }
        if s.answered, let w = s.waitSeconds { answeredWaitSeconds += w }
        talkSeconds += s.talkSeconds
        holdSeconds += s.holdSeconds
        afterCallWorkSeconds += s.afterCallWorkSeconds
    }

    /// Answered within the threshold over offered minus short abandons; nil before any call.
    public var serviceLevelPercent: Double? {
        let base = offered - shortAbandoned
        return base > 0 ? 100.0 * Double(answeredWithinServiceLevel) / Double(base) : nil
    }

    /// Abandoned (short abandons excluded) over offered minus short abandons.
    public var abandonPercent: Double? {
        let base = offered - shortAbandoned
        return base > 0 ? 100.0 * Double(abandoned - shortAbandoned) / Double(base) : nil
    }
}

/// Counters for an agent today.
public struct AgentToday: Sendable, Equatable {
    public var handled = 0
    public var talkSeconds = 0.0
    public var holdSeconds = 0.0
    public var afterCallWorkSeconds = 0.0

    public init() {}

    public mutating func add(_ s: InteractionStatistics) {
        if s.answered { handled += 1 }
        talkSeconds += s.talkSeconds
        holdSeconds += s.holdSeconds
        afterCallWorkSeconds += s.afterCallWorkSeconds
    }

    public var handleSeconds: Double { talkSeconds + holdSeconds + afterCallWorkSeconds }
}
