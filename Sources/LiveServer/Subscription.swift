import Foundation
import InteractionModel

/// One dashboard connection's protocol (docs/protocol.md) as a value: events in, actions out.
/// No sockets here; `LiveState` turns the actions into effects.
struct Subscription: Sendable {
    enum Phase: Sendable, Equatable {
        case awaitingHello(since: Date)
        case live
        case closed
    }

    enum Action: Sendable, Equatable {
        case sendSnapshot
        /// Send `resumed`, then every delta after the position.
        case resume(from: LogPosition)
        case sendPong
        case close(code: UInt16, reason: String)
    }

    static let helloTimeout: TimeInterval = 10
    /// More resynchronisations than this within `resyncWindow`: the client cannot keep up.
    static let maxResyncs = 3
    static let resyncWindow: TimeInterval = 60

    private(set) var phase: Phase
    /// nil: every queue. Never wider than the principal's scope.
    private(set) var queues: Set<String>?
    /// Who the first accepted hello authenticated as; later hellos keep the same token.
    private(set) var principal: Principal?
    private(set) var token: String?
    private var resyncs: [Date] = []

    init(openedAt: Date) {
        phase = .awaitingHello(since: openedAt)
    }

    var isLive: Bool { phase == .live }

    /// Whether a delta about an interaction in `queue` goes to this client.
    func wants(queue: String?) -> Bool {
        Self.wants(filter: queues, queue: queue)
    }

    /// Whether `filter` (nil: every queue) takes what happens in `queue` (nil: no queue yet,
    /// which only clients of every queue see).
    static func wants(filter: Set<String>?, queue: String?) -> Bool {
        guard let filter else { return true }
        guard let queue else { return false }
        return filter.contains(queue)
    }

    /// Whether `filter` (nil: every queue) takes something that concerns any of `queues`.
    static func wantsAny(filter: Set<String>?, of queues: [String]) -> Bool {
        guard let filter else { return true }
        return queues.contains(where: filter.contains)
    }

    /// A text message from the client. `canResume` says whether the server still holds every
    /// delta after a position; `admit` authenticates a hello's token for the stream.
    mutating func received(_ text: String, canResume: (LogPosition) -> Bool,
                           admit: (String?) -> Result<Principal, AccessRefusal>) -> [Action] {
        guard phase != .closed else { return [] }
        guard StrictJSON.isValid(Array(text.utf8)), let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let type = object["type"] as? String else {
            return close(4400, "bad message: expected a JSON object with a \"type\"")
        }
        switch type {
        case "hello":
            let token = object["token"]
            if token != nil, !(token is String), !(token is NSNull) { return close(4400, "bad message: token must be a string") }
            if principal != nil, (token as? String) != self.token {
                return close(4403, "a connection keeps the token of its first hello: open a new one for another token")
            }
            let admitted: Principal
            switch admit(token as? String) {
            case .success(let p): admitted = p
            case .failure(let refusal): return close(refusal.closeCode, refusal.message)
            }
            var filter: Set<String>?
            switch object["queues"] {
            case nil, is NSNull: filter = nil
            case let list as [Any]:
                let names = list.compactMap { $0 as? String }
                guard names.count == list.count, names.count <= 1000 else {
                    return close(4400, "bad message: queues must be a list of queue ids")
                }
                filter = Set(names)
            default:
                return close(4400, "bad message: queues must be a list of queue ids or null")
            }
            var resumeFrom: LogPosition?
            switch object["resume"] {
            case nil, is NSNull: resumeFrom = nil
            case let text as String:
                guard let p = LogPosition(text) else { return close(4400, "bad message: resume is not a position") }
                resumeFrom = p
            default:
                return close(4400, "bad message: resume must be a position string")
            }
            // A hello never widens what the token may see.
            filter = admitted.narrow(filter)
            principal = admitted
            self.token = token as? String
            let wasLive = phase == .live
            let sameFilter = filter == queues
            queues = filter
            phase = .live
            if let resumeFrom, (!wasLive || sameFilter), canResume(resumeFrom) {
                return [.resume(from: resumeFrom)]
            }
            return [.sendSnapshot]
        case "ping":
            guard phase == .live else { return close(4400, "bad message: send hello first") }
            return [.sendPong]
        default:
            return close(4400, "bad message: unknown type \"\(type.prefix(40))\"")
        }
    }

    /// The client's outgoing buffer overflowed: resynchronise with a snapshot, or give up.
    mutating func overflowed(now: Date) -> [Action] {
        resyncs = resyncs.filter { now.timeIntervalSince($0) < Self.resyncWindow }
        resyncs.append(now)
        if resyncs.count > Self.maxResyncs {
            return close(4429, "too slow: fell behind \(resyncs.count) times in \(Int(Self.resyncWindow)) s")
        }
        return [.sendSnapshot]
    }

    /// The token of this connection was revoked or expired (or the server's mode changed).
    mutating func accessEnded(_ refusal: AccessRefusal) -> [Action] {
        guard phase != .closed else { return [] }
        return close(refusal.closeCode, refusal.message)
    }

    mutating func tick(now: Date) -> [Action] {
        if case .awaitingHello(let since) = phase, now.timeIntervalSince(since) >= Self.helloTimeout {
            return close(4408, "no hello within \(Int(Self.helloTimeout)) s")
        }
        return []
    }

    private mutating func close(_ code: UInt16, _ reason: String) -> [Action] {
        phase = .closed
        return [.close(code: code, reason: reason)]
    }
}

extension LiveBoard {
    /// The queues whose readers may see where `transfer` goes: its target queue, or the
    /// queues of its target agent (or voice application).
    func queuesSeeingTarget(of transfer: TransferInfo) -> [String] {
        switch transfer.kind {
        case .queue: return [transfer.target]
        case .agent, .voiceApplication: return agents[transfer.target]?.queues ?? []
        }
    }

    /// Whether a reader of `filter` (nil: every queue) may see where `transfer` goes.
    func seesTarget(of transfer: TransferInfo, filter: Set<String>?) -> Bool {
        Subscription.wantsAny(filter: filter, of: queuesSeeingTarget(of: transfer))
    }
}

/// The recent deltas, encoded once, for resuming clients. Covers every position in
/// `(floor, newest]`.
struct DeltaLog: Sendable {
    struct Entry: Sendable {
        var position: LogPosition
        /// The queue of a transition's interaction (nil: none yet, only for every-queue clients).
        var queue: String?
        var json: String
        /// For a presence change: the agent's queues (it goes to clients watching any of them).
        var agentQueues: [String]? = nil
        /// For an interaction being transferred: the queues whose readers may see the target
        /// (the target queue, or the target agent's queues), and the delta with the target
        /// hidden, for queue-scoped readers of none of them.
        var transferTargetQueues: [String] = []
        var jsonHidingTransferTarget: String? = nil

        /// The delta as `filter` may read it.
        func json(for filter: Set<String>?) -> String {
            guard let hidden = jsonHidingTransferTarget,
                  !Subscription.wantsAny(filter: filter, of: transferTargetQueues) else { return json }
            return hidden
        }

        func wanted(by filter: Set<String>?) -> Bool {
            guard let agentQueues else { return Subscription.wants(filter: filter, queue: queue) }
            return Subscription.wantsAny(filter: filter, of: agentQueues)
        }
    }

    let capacity: Int
    private(set) var entries: [Entry] = []
    private var head = 0
    /// Deltas after this position are all held.
    private(set) var floor: LogPosition

    init(capacity: Int, floor: LogPosition) {
        self.capacity = max(capacity, 1)
        self.floor = floor
        entries.reserveCapacity(min(self.capacity, 4096))
    }

    var count: Int { entries.count - head }

    mutating func append(_ entry: Entry) {
        entries.append(entry)
        if count > capacity {
            floor = entries[head].position
            head += 1
            if head > capacity {
                entries.removeFirst(head)
                head = 0
            }
        }
    }

    /// Whether every delta after `position` is held (and `position` is not from the future).
    func covers(_ position: LogPosition, newest: LogPosition) -> Bool {
        position >= floor && position <= newest
    }

    /// Entries after `position`, in order.
    func after(_ position: LogPosition) -> ArraySlice<Entry> {
        let live = entries[head...]
        // Binary search for the first entry after position.
        var low = live.startIndex, high = live.endIndex
        while low < high {
            let mid = (low + high) / 2
            if live[mid].position <= position { low = mid + 1 } else { high = mid }
        }
        return live[low...]
    }
}
