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

    func validate() throws {
        guard rate > 0, rate <= 1000 else { throw ValidationError("--rate must be in (0, 1000]") }
        guard agents > 0, agents <= 10_000 else { throw ValidationError("--agents must be in 1...10000") }
        guard speed > 0, speed <= 1000 else { throw ValidationError("--speed must be in (0, 1000]") }
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
            let simulator = TrafficSimulator(store: store, options: options)
            simulator.onRefusal = { logger.debug("refused: \($0)") }
            try simulator.setUp()
            if simulator.counters.endedLeftovers > 0 {
                logger.notice("ended \(simulator.counters.endedLeftovers) interactions an earlier run left live")
            }
            logger.info("simulating \(rate) calls/s with \(agents) agents (seed \(seed), speed \(speed)x)")
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
