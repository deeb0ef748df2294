import Foundation

/// What the history of one completed interaction says, for statistics.
///
/// A plain value: the definitions have one author, `sightline.record_history`
/// (sql/002_lifecycle.sql), which stores them in `sightline.interaction_history` in the
/// transaction of the completing transition. The log reader carries them with the completing
/// row (`Transition.statistics`); nothing here computes them.
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
    /// Abandoned soon after entering the queue (or after arriving): under 5 seconds, as
    /// `sightline.record_history` defines it.
    public var shortAbandon: Bool
    /// It started a transfer that succeeded.
    public var transferred: Bool
    /// It was the new interaction of a transfer that failed (not an abandon).
    public var failedTransferLeg: Bool

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
