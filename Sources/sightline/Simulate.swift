import ArgumentParser
import Foundation
import InteractionModel
import InteractionStore
import Simulation

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive realistic contact-center traffic through the store, with a one-line summary per second.")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Calls arriving per second.")
    var rate: Double = 1.0

    @Option(help: "Number of agents.")
    var agents: Int = 16

    @Option(help: "Seed for the random choices (same seed, same decisions).")
    var seed: UInt64 = 1

    @Option(help: "How many times faster than real time talk, hold and wrap-up run.")
    var speed: Double = 1.0

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var duration: Double?

    @Flag(help: "No per-second summary.")
    var quiet = false

    @Option(help: ArgumentHelp("Simulated time from this ISO 8601 instant (e.g. 2026-11-24T08:00:00Z): every write carries its time and --duration seconds of traffic are written at once (history for figures). Default: the wall clock.", valueName: "time"))
    var simulatedStart: String?

    func validate() throws {
        guard rate > 0, rate <= 1000 else { throw ValidationError("--rate must be in (0, 1000]") }
        guard agents > 0, agents <= 10_000 else { throw ValidationError("--agents must be in 1...10000") }
        guard speed > 0, speed <= 1000 else { throw ValidationError("--speed must be in (0, 1000]") }
        if let simulatedStart {
            guard Self.parseTime(simulatedStart) != nil else {
                throw ValidationError("--simulated-start must be an ISO 8601 time such as 2026-11-24T08:00:00Z")
            }
            guard let duration, duration > 0, duration <= 31 * 86400 else {
                throw ValidationError("--simulated-start needs --duration (seconds of simulated traffic, at most 31 days)")
            }
        }
    }

    static func parseTime(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }

    func run() throws {
        let logger = db.makeLogger("sightline.simulate")
        do {
            let store = try db.connectAndMigrate(logger: logger)
            var options = TrafficSimulator.Options()
            options.arrivalsPerSecond = rate
            options.agents = agents
            options.seed = seed
            options.speed = speed
            options.callPrefix = "sim-\(Int(Date().timeIntervalSince1970))"
            options.startTime = simulatedStart.flatMap(Self.parseTime)
            let simulator = TrafficSimulator(store: store, options: options)
            simulator.onRefusal = { logger.debug("refused: \($0)") }
            try simulator.setUp()
            if simulator.counters.endedLeftovers > 0 {
                logger.notice("ended \(simulator.counters.endedLeftovers) interactions an earlier run left live")
            }
            logger.info("simulating \(rate) calls/s with \(agents) agents (seed \(seed), speed \(speed)x)")
            if options.startTime != nil, let duration {
                let started = Date()
                simulator.runSimulated(seconds: duration)
                let c = simulator.counters
                logger.info("wrote \(duration) s of simulated traffic in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(c.arrivals) calls, \(c.transitions) transitions, \(c.presenceChanges) presence changes, \(c.transfers) transfers (\(c.failedTransfers) failed), \(c.abandons) abandons, \(c.refused) refused")
                return
            }
            simulator.run(seconds: duration) { c, waiting in
                guard !quiet else { return }
                let queues = waiting.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                let line = ("calls \(c.arrivals)  transitions \(c.transitions)  holds \(c.holds)  transfers \(c.transfers) (failed \(c.failedTransfers))  abandons \(c.abandons)  breaks \(c.breaks)  refused \(c.refused)  waiting: \(queues)\n")
                FileHandle.standardOutput.write(Data(line.utf8))
            }
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}
