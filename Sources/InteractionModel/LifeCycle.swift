/// The states of an interaction (the seed's life cycle). An interaction is in exactly one.
public enum InteractionState: String, CaseIterable, Sendable, Codable, Hashable {
    case idle
    case dataCollection = "data_collection"
    case queued
    case deliveryPending = "delivery_pending"
    case delivered
    case held
    case afterCallWork = "after_call_work"
    case completed

    /// States in which an agent has accepted the interaction and works on it.
    public var involvesAgent: Bool {
        switch self {
        case .deliveryPending, .delivered, .held, .afterCallWork: return true
        default: return false
        }
    }
}

/// The life-cycle table: which (from, to) steps exist and who may ask for them.
///
/// The same table is seeded into `sightline.transition_rules` by `sql/001_schema.sql`; a test
/// proves the two agree on every pair of states.
public enum LifeCycle {
    public enum StepKind: String, Sendable, Equatable {
        /// Any writer may ask for it.
        case writer
        /// Only as the first step of a transfer (`delivered -> queued`).
        case transferBegin = "transfer_begin"
        /// Only follows the outcome of the new interaction of a transfer.
        case transferOutcome = "transfer_outcome"
    }

    public static let steps: [InteractionState: [InteractionState: StepKind]] = [
        .idle: [.dataCollection: .writer, .queued: .writer, .deliveryPending: .writer, .completed: .writer],
        .dataCollection: [.queued: .writer, .completed: .writer],
        .queued: [.deliveryPending: .writer, .completed: .writer,
                  .afterCallWork: .transferOutcome, .delivered: .transferOutcome],
        .deliveryPending: [.delivered: .writer, .completed: .writer],
        .delivered: [.held: .writer, .afterCallWork: .writer, .queued: .transferBegin],
        .held: [.delivered: .writer],
        .afterCallWork: [.completed: .writer],
        .completed: [:],
    ]

    public static func kind(from: InteractionState, to: InteractionState) -> StepKind? {
        steps[from]?[to]
    }

    /// States a writer may move an interaction to from `state` (transfers aside).
    public static func writerTargets(from state: InteractionState) -> [InteractionState] {
        InteractionState.allCases.filter { kind(from: state, to: $0) == .writer }
    }
}
