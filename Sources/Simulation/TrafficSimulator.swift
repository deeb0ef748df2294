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
/// agents who accept, talk, hold, transfer (to an agent, a queue, the voice application; some
/// transfers fail) and wrap up, and callers who abandon.
///
/// Time runs `speed` times faster than the wall clock for durations (talk, hold, patience), not
/// for the arrival rate, which is per real second.
public final class TrafficSimulator {
    public struct Options: Sendable {
        public var arrivalsPerSecond = 1.0
        public var agents = 16
        public var seed: UInt64 = 1
        public var speed = 1.0
        public var callPrefix = "sim"

        public init() {}
    }

    public struct Counters: Sendable {
        public var arrivals = 0
        public var transitions = 0
        public var transfers = 0
        public var abandons = 0
        public var refused = 0
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
    }

    private struct Call {
        var id: Int64
        var queue: String?
        var agent: String?
        var state: InteractionState
        var transferOf: Int64?      // this is the new interaction of a transfer of that one
        var transferTarget: TransferKind?
        var holds = 0
    }

    public let queues: [QueueConfig] = [
        QueueConfig(id: "sales", name: "Sales", serviceLevelSeconds: 20, waitWarningSeconds: 30, waitAlarmSeconds: 60),
        QueueConfig(id: "support", name: "Support", serviceLevelSeconds: 30, waitWarningSeconds: 45, waitAlarmSeconds: 90),
        QueueConfig(id: "billing", name: "Billing", serviceLevelSeconds: 20, waitWarningSeconds: 30, waitAlarmSeconds: 60),
        QueueConfig(id: "vip", name: "VIP", serviceLevelSeconds: 10, waitWarningSeconds: 15, waitAlarmSeconds: 30,
                    holdAlarmSeconds: 60),
    ]
    public let voiceApplication = AgentConfig(id: "ivr", name: "Voice application", isVoiceApplication: true)

    private let store: InteractionStore
    private let options: Options
    private var random: SeededRandom
    private var agents: [AgentConfig] = []
    private var freeAgents: [String] = []
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
    }

    private static let firstNames = ["Ann", "Bob", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jun",
                                     "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
                                     "Uma", "Vera", "Wei", "Ximena", "Yusuf", "Zoe"]

    /// Creates the queues, the agents and the voice application.
    public func setUp() throws {
        for q in queues { try store.upsertQueue(q) }
        try store.upsertAgent(voiceApplication)
        for n in 0..<options.agents {
            let name = Self.firstNames[n % Self.firstNames.count] + (n >= Self.firstNames.count ? " \(n / Self.firstNames.count + 1)" : "")
            // Everyone takes two or three queues; VIP only the first quarter.
            var skills = [queues[n % 3].id, queues[(n + 1) % 3].id]
            if n % 4 == 0 { skills.append("vip") }
            let agent = AgentConfig(id: "agent-\(n + 1)", name: name, queues: skills)
            try store.upsertAgent(agent)
            agents.append(agent)
            freeAgents.append(agent.id)
        }
        schedule(.arrival, after: 0)
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
            calls[id]?.queue = queue
            waiting[queue, default: []].append(id)
            schedule(.abandon(id), after: scaled(75))
            dispatch()
        case .abandon(let id):
            guard let call = calls[id], call.state == .queued, let q = call.queue else { return }
            waiting[q]?.removeAll { $0 == id }
            abandonNow(id)
        case .answer(let id):
            guard let call = calls[id], call.state == .deliveryPending else { return }
            guard move(id, to: .delivered) else { return }
            if call.transferTarget == .voiceApplication { schedule(.voiceAppDone(id), after: random.uniform(5...20) / options.speed); return }
            schedule(.endTalk(id), after: scaled(90))
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
            if let agent = call.agent, agent != voiceApplication.id { release(agent) }
        case .failTransfer(let id):
            guard let call = calls[id], call.transferOf != nil,
                  [.idle, .queued, .deliveryPending].contains(call.state) else { return }
            if let q = call.queue { waiting[q]?.removeAll { $0 == id } }
            if call.state == .deliveryPending, let agent = call.agent { release(agent) }
            guard move(id, to: .completed) else { return }
            calls[id] = nil
            if let original = call.transferOf {
                // The store returned the original to delivered with its agent.
                calls[original]?.state = .delivered
                schedule(.endTalk(original), after: scaled(30))
            }
        case .voiceAppDone(let id):
            guard move(id, to: .afterCallWork) else { return }
            schedule(.completeWrapUp(id), after: 0.5)
        }
    }

    private func arrive() {
        callNumber += 1
        let callID = "\(options.callPrefix)-\(options.seed)-\(callNumber)"
        do {
            let id = try store.createInteraction(callID: callID)
            counters.arrivals += 1
            counters.transitions += 1
            calls[id] = Call(id: id, state: .idle)
            if random.chance(0.02) { schedule(.abandon(id), after: 0.5); abandonNow(id); return }
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
        return r < 0.4 ? "sales" : r < 0.75 ? "support" : r < 0.93 ? "billing" : "vip"
    }

    /// Gives waiting callers to free agents who take their queue, longest wait first.
    private func dispatch() {
        var progress = true
        while progress {
            progress = false
            for queue in queues.map(\.id) {
                guard let id = waiting[queue]?.first else { continue }
                guard let index = freeAgents.firstIndex(where: { a in agents.first { $0.id == a }?.queues.contains(queue) ?? false })
                else { continue }
                let agent = freeAgents.remove(at: index)
                waiting[queue]?.removeFirst()
                if move(id, to: .deliveryPending, agent: agent) {
                    calls[id]?.agent = agent
                    schedule(.answer(id), after: random.uniform(1...4) / options.speed)
                } else {
                    freeAgents.append(agent)
                }
                progress = true
            }
        }
    }

    private func release(_ agent: String) {
        freeAgents.append(agent)
        dispatch()
    }

    private func endTalk(_ id: Int64) {
        guard let call = calls[id], call.state == .delivered, let agent = call.agent else { return }
        if call.holds < 2, random.chance(0.18) {
            guard move(id, to: .held, agent: agent) else { return }
            calls[id]?.holds += 1
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
        case .agent: target = freeAgents.first ?? agents[Int(random.next() % UInt64(agents.count))].id
        case .queue: target = pickQueue()
        case .voiceApplication: target = voiceApplication.id
        }
        do {
            let newID = try store.beginTransfer(id, kind: kind.rawValue, target: target)
            counters.transitions += 2
            counters.transfers += 1
            calls[id]?.state = .queued
            calls[newID] = Call(id: newID, state: .idle, transferOf: id, transferTarget: kind)
            if random.chance(0.15) {
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
                guard move(newID, to: .queued, queue: target) else { return }
                calls[newID]?.queue = target
                waiting[target, default: []].append(newID)
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

    /// One transition through the store; keeps the local picture in step, including the
    /// original of a transfer whose new interaction was just delivered.
    @discardableResult
    private func move(_ id: Int64, to state: InteractionState, agent: String? = nil, queue: String? = nil) -> Bool {
        guard calls[id] != nil else { return false }
        do {
            try store.transition(id, to: state, agent: agent, queue: queue)
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
