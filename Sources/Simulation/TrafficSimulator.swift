import Foundation
import InteractionModel
import InteractionStore

/// A small deterministic random generator (SplitMix64): the same seed gives the same choices.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

    /// Exponentially distributed with the given mean.
    public mutating func exponential(mean: Double) -> Double {
        -mean * log(1 - Double.random(in: 0..<1, using: &self))
    }

    public mutating func uniform(_ range: ClosedRange<Double>) -> Double { Double.random(in: range, using: &self) }
}

/// Contact-center traffic through the store: arrivals, the voice application, several queues,
/// agents who log in, take breaks (not ready with a reason), accept, talk, hold, transfer (to an
/// agent, a queue, the voice application; some transfers fail) and wrap up, and callers who
/// abandon. Waiting callers are served fairly: the longest wait of any queue first, by the agent
/// free longest; only ready agents take calls.
///
/// Two clocks: by default time is the wall clock, and durations (talk, hold, patience, breaks)
/// run `speed` times faster than real time, the arrival rate is per real second. With
/// `startTime` set, time is simulated: every write carries its time (`startTime` plus simulated
/// seconds), nothing sleeps, and `runSimulated(seconds:)` plays a whole period at once: the
/// same seed gives the same log, which tests use to check the figures.
///
/// `setUp()` ends what an earlier run left live on its queues and agents (completing every
/// interaction through legal steps), so a restart never leaves calls on the board forever with
/// their agents double-booked.
public final class TrafficSimulator {
    public struct Options: Sendable {
        public var arrivalsPerSecond = 1.0
        public var agents = 16
        public var seed: UInt64 = 1
        public var speed = 1.0
        public var callPrefix = "sim"
        /// Live interactions whose call id starts with this were left by an earlier run too
        /// (those still in idle or the voice application have no queue or agent yet).
        public var leftoverCallPrefix = "sim-"
        /// Prefix of the queue and agent ids ("" gives sales, support, ..., agent-1, ...).
        public var idPrefix = ""
        /// Simulated time from this instant (nil: wall-clock time).
        public var startTime: Date?
        /// Chance that an agent takes a break (not ready) after a call.
        public var breakChance = 0.08
        /// Mean talk time in seconds (before `speed`).
        public var meanTalkSeconds = 70.0

        public init() {}
    }

    public struct Counters: Sendable {
        public var arrivals = 0
        public var transitions = 0
        public var transfers = 0
        public var failedTransfers = 0
        public var holds = 0
        public var abandons = 0
        public var breaks = 0
        public var presenceChanges = 0
        public var refused = 0
        /// Interactions an earlier run left live, ended by `setUp()`.
        public var endedLeftovers = 0
    }

    private enum Event {
        case arrival
        case route(Int64)               // idle/data collection -> queued
        case collect(Int64)             // idle -> data collection
        case abandon(Int64)             // patience ran out while waiting
        case answer(Int64)              // delivery pending -> delivered
        case endTalk(Int64)             // delivered -> hold / transfer / after-call work
        case unhold(Int64)
        case completeWrapUp(Int64)
        case failTransfer(Int64)        // new interaction of a transfer gives up
        case voiceAppDone(Int64)
        case breakOver(String)          // not ready -> ready
    }

    private struct Call {
        var id: Int64
        var queue: String?
        var agent: String?
        var state: InteractionState
        var transferOf: Int64?      // this is the new interaction of a transfer of that one
        var transferTarget: TransferKind?
        var holds = 0
        var queuedAt = 0.0
    }

    public let queues: [QueueConfig]
    public let voiceApplication: AgentConfig
    public static let breakReasons = ["break", "break", "break", "lunch", "training", "meeting", "coaching"]

    private let store: InteractionStore
    private let options: Options
    private var random: SeededRandom
    private var agents: [AgentConfig] = []
    private var freeAgents: [String] = []          // ready and idle, longest idle first
    private var calls: [Int64: Call] = [:]
    private var waiting: [String: [Int64]] = [:]   // per queue, arrival order
    private var events: [(at: Double, seq: Int, event: Event)] = []
    private var seq = 0
    private var callNumber = 0
    private var clock: Double = 0
    public private(set) var counters = Counters()
    public var onRefusal: ((StoreError) -> Void)?

    public init(store: InteractionStore, options: Options) {
        self.store = store
        self.options = options
        self.random = SeededRandom(seed: options.seed)
        let p = options.idPrefix
        queues = [
            QueueConfig(id: p + "sales", name: "Sales", serviceLevelSeconds: 20, waitWarningSeconds: 30, waitAlarmSeconds: 60, abandonWarningPercent: 10, abandonAlarmPercent: 20),
            QueueConfig(id: p + "support", name: "Support", serviceLevelSeconds: 30, waitWarningSeconds: 45, waitAlarmSeconds: 90, abandonWarningPercent: 10, abandonAlarmPercent: 20),
            QueueConfig(id: p + "billing", name: "Billing", serviceLevelSeconds: 20, waitWarningSeconds: 30, waitAlarmSeconds: 60, abandonWarningPercent: 10, abandonAlarmPercent: 20),
            QueueConfig(id: p + "vip", name: "VIP", serviceLevelSeconds: 10, waitWarningSeconds: 15, waitAlarmSeconds: 30,
                        holdAlarmSeconds: 60, abandonWarningPercent: 5, abandonAlarmPercent: 10),
        ]
        voiceApplication = AgentConfig(id: p + "ivr", name: "Voice application", isVoiceApplication: true)
    }

    private static let firstNames = ["Ann", "Bob", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jun",
                                     "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
                                     "Uma", "Vera", "Wei", "Ximena", "Yusuf", "Zoe"]

    /// The time of the current step: nil (the store's now) on the wall clock.
    private var now: Date? { options.startTime.map { $0.addingTimeInterval(clock) } }

    /// Creates the queues, the agents and the voice application, ends what an earlier run left
    /// live on them, and logs every agent in (ready).
    public func setUp() throws {
        for q in queues { try store.upsertQueue(q) }
        try store.upsertAgent(voiceApplication)
        for n in 0..<options.agents {
            let name = Self.firstNames[n % Self.firstNames.count] + (n >= Self.firstNames.count ? " \(n / Self.firstNames.count + 1)" : "")
            // Everyone takes two or three queues; VIP only the first quarter.
            var skills = [queues[n % 3].id, queues[(n + 1) % 3].id]
            if n % 4 == 0 { skills.append(queues[3].id) }
            let agent = AgentConfig(id: "\(options.idPrefix)agent-\(n + 1)", name: name, queues: skills)
            try store.upsertAgent(agent)
            agents.append(agent)
        }
        try endLeftovers()
        let presence = try store.presence()
        for agent in agents {
            if presence[agent.id]?.state != .ready {
                try store.setPresence(agent: agent.id, .ready, at: now)
                counters.presenceChanges += 1
            }
            freeAgents.append(agent.id)
        }
        schedule(.arrival, after: 0)
    }

    /// Completes, through legal steps, every live interaction on this simulator's queues or
    /// agents (a transfer's new interaction first: that returns its original to delivered).
    private func endLeftovers() throws {
        let queueIDs = queues.map(\.id)
        let agentIDs = agents.map(\.id) + [voiceApplication.id]
        for _ in 0..<4 {
            let live = try store.liveInteractions(queues: queueIDs, agents: agentIDs, callPrefix: options.leftoverCallPrefix)
            guard !live.isEmpty else { return }
            for i in live.sorted(by: { ($0.transferFrom == nil ? 1 : 0, $0.id) < ($1.transferFrom == nil ? 1 : 0, $1.id) }) {
                // Re-read: ending one may have moved another (a failed transfer's original).
                guard let current = try store.liveInteractions(ids: [i.id]).first else { continue }
                if current.state == .queued && current.transferTo != nil { continue }
                do {
                    if current.state == .held, let holder = current.heldBy {
                        try store.transition(current.id, to: .delivered, agent: holder, at: now)
                    }
                    if current.state == .held || current.state == .delivered {
                        try store.transition(current.id, to: .afterCallWork, at: now)
                    }
                    try store.transition(current.id, to: .completed, at: now)
                    counters.endedLeftovers += 1
                } catch let error as StoreError {
                    onRefusal?(error)
                }
            }
        }
    }

    /// Runs until `seconds` of wall time have passed (nil: forever), calling `report` once a second.
    public func run(seconds: Double?, report: (Counters, [String: Int]) -> Void) {
        let start = Date()
        var lastReport = 0.0
        while true {
            let elapsed = Date().timeIntervalSince(start)
            if let seconds, elapsed >= seconds { break }
            step(until: elapsed)
            if elapsed - lastReport >= 1 {
                lastReport = elapsed
                report(counters, waiting.mapValues(\.count))
            }
            let next = events.first?.at ?? elapsed + 0.05
            let pause = min(max(next - Date().timeIntervalSince(start), 0.001), 0.05)
            usleep(UInt32(pause * 1_000_000))
        }
    }

    /// Simulated time (`startTime` set): plays `seconds` of traffic at once.
    public func runSimulated(seconds: Double) {
        precondition(options.startTime != nil, "runSimulated needs Options.startTime")
        step(until: clock + seconds)
    }

    /// Processes every event due by `now` (seconds since start).
    public func step(until now: Double) {
        while let first = events.first, first.at <= now {
            events.removeFirst()
            clock = first.at
            handle(first.event)
        }
        clock = now
    }

    // MARK: Events

    private func schedule(_ event: Event, after seconds: Double) {
        seq += 1
        let entry = (at: clock + seconds, seq: seq, event: event)
        let index = events.firstIndex { ($0.at, $0.seq) > (entry.at, entry.seq) } ?? events.count
        events.insert(entry, at: index)
    }

    private func scaled(_ mean: Double) -> Double { random.exponential(mean: mean) / options.speed }

    private func handle(_ event: Event) {
        switch event {
        case .arrival:
            schedule(.arrival, after: random.exponential(mean: 1 / max(options.arrivalsPerSecond, 0.001)))
            arrive()
        case .collect(let id):
            guard move(id, to: .dataCollection) else { return }
            if random.chance(0.04) { abandonNow(id); return }
            schedule(.route(id), after: random.uniform(2...8) / options.speed)
        case .route(let id):
            let queue = pickQueue()
            guard move(id, to: .queued, queue: queue) else { return }
            enqueue(id, queue)
            schedule(.abandon(id), after: scaled(75))
            dispatch()
        case .abandon(let id):
            // Still waiting: queued with no agent (a transfer's original is queued with its agent).
            guard let call = calls[id], call.state == .queued, call.agent == nil, let q = call.queue else { return }
            waiting[q]?.removeAll { $0 == id }
            abandonNow(id)
        case .answer(let id):
            guard let call = calls[id], call.state == .deliveryPending else { return }
            guard move(id, to: .delivered) else { return }
            if call.transferTarget == .voiceApplication { schedule(.voiceAppDone(id), after: random.uniform(5...20) / options.speed); return }
            schedule(.endTalk(id), after: scaled(options.meanTalkSeconds))
        case .endTalk(let id):
            endTalk(id)
        case .unhold(let id):
            guard let call = calls[id], call.state == .held, let agent = call.agent else { return }
            guard move(id, to: .delivered, agent: agent) else { return }
            schedule(.endTalk(id), after: scaled(40))
        case .completeWrapUp(let id):
            guard let call = calls[id], call.state == .afterCallWork else { return }
            guard move(id, to: .completed) else { return }
            calls[id] = nil
            if let agent = call.agent, agent != voiceApplication.id { afterWork(agent) }
        case .failTransfer(let id):
            guard let call = calls[id], call.transferOf != nil,
                  [.idle, .queued, .deliveryPending].contains(call.state) else { return }
            if let q = call.queue { waiting[q]?.removeAll { $0 == id } }
            if call.state == .deliveryPending, let agent = call.agent, agent != voiceApplication.id { release(agent) }
            guard move(id, to: .completed) else { return }
            counters.failedTransfers += 1
            calls[id] = nil
            if let original = call.transferOf {
                // The store returned the original to delivered with its agent.
                calls[original]?.state = .delivered
                schedule(.endTalk(original), after: scaled(30))
            }
        case .voiceAppDone(let id):
            guard move(id, to: .afterCallWork) else { return }
            schedule(.completeWrapUp(id), after: 0.5)
        case .breakOver(let agent):
            guard setPresence(agent, .ready) else { return }
            release(agent)
        }
    }

    private func arrive() {
        callNumber += 1
        let callID = "\(options.callPrefix)-\(options.seed)-\(callNumber)"
        do {
            let id = try store.createInteraction(callID: callID, at: now)
            counters.arrivals += 1
            counters.transitions += 1
            calls[id] = Call(id: id, state: .idle)
            if random.chance(0.02) { abandonNow(id); return }
            if random.chance(0.7) {
                schedule(.collect(id), after: random.uniform(0.5...2) / options.speed)
            } else {
                schedule(.route(id), after: random.uniform(0.5...3) / options.speed)
            }
        } catch {
            refused(error)
        }
    }

    private func pickQueue() -> String {
        let r = random.uniform(0...1)
        return queues[r < 0.4 ? 0 : r < 0.75 ? 1 : r < 0.93 ? 2 : 3].id
    }

    private func enqueue(_ id: Int64, _ queue: String) {
        calls[id]?.queue = queue
        calls[id]?.queuedAt = clock
        waiting[queue, default: []].append(id)
    }

    /// Gives waiting callers to free agents: of all queues' longest waiting callers, the one who
    /// waited longest goes first, to the agent free longest among those who take its queue.
    private func dispatch() {
        while true {
            var best: (id: Int64, queue: String, agentIndex: Int, since: Double)?
            for queue in queues.map(\.id) {
                guard let id = waiting[queue]?.first, let call = calls[id] else { continue }
                guard let index = freeAgents.firstIndex(where: { a in agents.first { $0.id == a }?.queues.contains(queue) ?? false })
                else { continue }
                if best == nil || call.queuedAt < best!.since { best = (id, queue, index, call.queuedAt) }
            }
            guard let best else { return }
            let agent = freeAgents.remove(at: best.agentIndex)
            waiting[best.queue]?.removeFirst()
            if move(best.id, to: .deliveryPending, agent: agent) {
                calls[best.id]?.agent = agent
                schedule(.answer(best.id), after: random.uniform(1...4) / options.speed)
            } else {
                freeAgents.append(agent)
            }
        }
    }

    private func release(_ agent: String) {
        freeAgents.append(agent)
        dispatch()
    }

    /// After a call: a break now and then (not ready with a reason), else ready for the next.
    private func afterWork(_ agent: String) {
        if random.chance(options.breakChance) {
            let reason = Self.breakReasons[Int(random.next() % UInt64(Self.breakReasons.count))]
            if setPresence(agent, .notReady, reason: reason) {
                counters.breaks += 1
                schedule(.breakOver(agent), after: scaled(reason == "lunch" ? 600 : 180))
                return
            }
        }
        release(agent)
    }

    private func endTalk(_ id: Int64) {
        guard let call = calls[id], call.state == .delivered, let agent = call.agent else { return }
        if call.holds < 2, random.chance(0.18) {
            guard move(id, to: .held, agent: agent) else { return }
            calls[id]?.holds += 1
            counters.holds += 1
            schedule(.unhold(id), after: scaled(25))
            return
        }
        if call.transferOf == nil, random.chance(0.12) {
            transfer(id, agent: agent)
            return
        }
        guard move(id, to: .afterCallWork) else { return }
        schedule(.completeWrapUp(id), after: scaled(15))
    }

    private func transfer(_ id: Int64, agent: String) {
        let r = random.uniform(0...1)
        let kind: TransferKind = r < 0.5 ? .agent : r < 0.8 ? .queue : .voiceApplication
        var target: String
        switch kind {
        case .agent:
            let others = agents.map(\.id).filter { $0 != agent }
            target = freeAgents.first ?? others[Int(random.next() % UInt64(max(others.count, 1)))]
        case .queue: target = pickQueue()
        case .voiceApplication: target = voiceApplication.id
        }
        do {
            let newID = try store.beginTransfer(id, kind: kind.rawValue, target: target, at: now)
            counters.transitions += kind == .queue ? 3 : 2
            counters.transfers += 1
            calls[id]?.state = .queued
            calls[newID] = Call(id: newID, state: kind == .queue ? .queued : .idle, transferOf: id, transferTarget: kind)
            if random.chance(0.15) {
                if kind == .queue { enqueue(newID, target) }
                schedule(.failTransfer(newID), after: random.uniform(3...8) / options.speed)
                return
            }
            switch kind {
            case .agent:
                if let index = freeAgents.firstIndex(of: target) {
                    freeAgents.remove(at: index)
                    if move(newID, to: .deliveryPending, agent: target) {
                        calls[newID]?.agent = target
                        schedule(.answer(newID), after: random.uniform(1...3) / options.speed)
                        return
                    }
                    freeAgents.append(target)
                }
                schedule(.failTransfer(newID), after: random.uniform(2...5) / options.speed)
            case .queue:
                // The store put the new interaction in the queue (a queue transfer).
                enqueue(newID, target)
                schedule(.failTransfer(newID), after: scaled(60) + 20 / options.speed)
                dispatch()
            case .voiceApplication:
                guard move(newID, to: .deliveryPending, agent: target) else { return }
                calls[newID]?.agent = target
                schedule(.answer(newID), after: 0.5 / options.speed)
            }
        } catch {
            refused(error)
        }
    }

    private func abandonNow(_ id: Int64) {
        guard move(id, to: .completed) else { return }
        counters.abandons += 1
        calls[id] = nil
    }

    @discardableResult
    private func setPresence(_ agent: String, _ state: PresenceState, reason: String? = nil) -> Bool {
        do {
            try store.setPresence(agent: agent, state, reason: reason, at: now)
            counters.presenceChanges += 1
            return true
        } catch {
            refused(error)
            return false
        }
    }

    /// One transition through the store; keeps the local picture in step, including the
    /// original of a transfer whose new interaction was just delivered.
    @discardableResult
    private func move(_ id: Int64, to state: InteractionState, agent: String? = nil, queue: String? = nil) -> Bool {
        guard calls[id] != nil else { return false }
        do {
            try store.transition(id, to: state, agent: agent, queue: queue, at: now)
            counters.transitions += 1
            calls[id]?.state = state
            if state == .delivered, let original = calls[id]?.transferOf, calls[original]?.state == .queued {
                counters.transitions += 1
                calls[original]?.state = .afterCallWork
                calls[id]?.transferOf = nil
                schedule(.completeWrapUp(original), after: scaled(15))
            }
            return true
        } catch {
            refused(error)
            return false
        }
    }

    private func refused(_ error: Error) {
        counters.refused += 1
        if let e = error as? StoreError { onRefusal?(e) }
    }
}
