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
