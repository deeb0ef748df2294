import Foundation
import InteractionModel
import XCTest

final class AlertEvaluatorTests: XCTestCase {
    var board = LiveBoard()
    var log = LogBuilder()
    let up = StreamHealth(databaseUp: true, tailerSilentSeconds: 0.5)

    override func setUp() {
        board.queues["sales"] = QueueConfig(id: "sales", name: "Sales", serviceLevelTargetPercent: 80, waitAlarmSeconds: 60,
                                            holdAlarmSeconds: 120)
        board.agents["ann"] = AgentConfig(id: "ann", name: "Ann Lee", queues: ["sales"])
        // Logged in and ready: only a ready agent without an interaction is available.
        _ = board.apply(PresenceChange(position: LogPosition(orderTx: 1, id: 0), agent: "ann", version: 1,
                                       from: .loggedOut, to: .ready, at: log.clock))
    }

    func configuration(_ json: String) throws -> AlertConfiguration {
        try AlertConfiguration.parse(Data(json.utf8))
    }

    /// Only `rules` enabled, with the given overrides.
    func only(_ rules: [AlertRule: String]) throws -> AlertConfiguration {
        let parts = AlertRule.allCases.map { rule in
            "\"\(rule.rawValue)\": " + (rules[rule].map { "{\($0)}" } ?? "{\"enabled\": false}")
        }
        return try configuration("{\"defaults\": {\(parts.joined(separator: ","))}}")
    }

    func evaluate(_ e: inout AlertEvaluator, at seconds: Double, stream: StreamHealth? = nil) -> [AlertEvent] {
        e.evaluate(board: board, stream: stream ?? up, now: log.clock.addingTimeInterval(seconds))
    }

    func queued(_ id: Int64) {
        _ = board.apply(log.step(id, .idle))
        _ = board.apply(log.step(id, .queued, queue: "sales"))
    }

    func testTheLongestWaitFiresOverTheQueueThresholdAndResolvesBelowTheClearBound() throws {
        var e = AlertEvaluator(configuration: try only([.longestWait: ""]))
        queued(1)
        XCTAssertEqual(evaluate(&e, at: 60), [], "at the threshold is not over it")
        let fired = evaluate(&e, at: 61)
        XCTAssertEqual(fired.map(\.alert.state), [.firing])
        let alert = try XCTUnwrap(fired.first?.alert)
        XCTAssertEqual(alert.queue, "sales")
        XCTAssertEqual(alert.severity, .critical)
        XCTAssertEqual(alert.figures["longestWaitSeconds"], 61)
        XCTAssertEqual(alert.figures["threshold"], 60)
        XCTAssertTrue(alert.summary.contains("Sales"), alert.summary)
        XCTAssertEqual(fired.first?.id, alert.id + ".firing")
        XCTAssertEqual(evaluate(&e, at: 62), [], "fires once")
        XCTAssertEqual(e.firing.map(\.id), [alert.id])

        // The caller is answered; a new one waits 50 s: under the threshold, over the clear
        // bound (80 % of 60 = 48 s): still firing (hysteresis).
        log.advance(62)
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        queued(2)
        XCTAssertEqual(evaluate(&e, at: 50), [])
        let resolved = evaluate(&e, at: 48)
        XCTAssertEqual(resolved.map(\.alert.state), [.resolved])
        XCTAssertEqual(resolved.first?.alert.id, alert.id, "the resolution carries the alert's id")
        XCTAssertEqual(resolved.first?.id, alert.id + ".resolved")
        XCTAssertEqual(resolved.first?.alert.resolvedAt, log.clock.addingTimeInterval(48))
        XCTAssertEqual(e.firing, [])
    }

    func testForDelaysFiringAndABreachThatEndsEarlyNeverFires() throws {
        var e = AlertEvaluator(configuration: try only([.longestWait: "\"threshold\": 10, \"for\": 5"]))
        queued(1)
        XCTAssertEqual(evaluate(&e, at: 11), [])
        XCTAssertEqual(evaluate(&e, at: 15), [])
        let fired = evaluate(&e, at: 16)
        XCTAssertEqual(fired.count, 1)
        XCTAssertEqual(fired.first?.alert.since, log.clock.addingTimeInterval(11), "since: when the breach began")

        var other = AlertEvaluator(configuration: try only([.longestWait: "\"threshold\": 10, \"for\": 5"]))
        XCTAssertEqual(evaluate(&other, at: 11), [])
        log.advance(12)
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        XCTAssertEqual(evaluate(&other, at: 10), [])
        XCTAssertEqual(other.firing, [])
    }

    func testClearForHoldsAResolutionUntilTheValueStaysClear() throws {
        var e = AlertEvaluator(configuration: try only([.longestWait: "\"threshold\": 10, \"clearFor\": 3"]))
        queued(1)
        XCTAssertEqual(evaluate(&e, at: 11).count, 1)
        log.advance(12)
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        XCTAssertEqual(evaluate(&e, at: 0), [])
        XCTAssertEqual(evaluate(&e, at: 2), [])
        XCTAssertEqual(evaluate(&e, at: 3).map(\.alert.state), [.resolved])
    }

    func testAHeldCallNamesTheHoldingAgentAndResolvesWhenTakenOffHold() throws {
        var e = AlertEvaluator(configuration: try only([.heldCall: ""]))
        queued(7)
        _ = board.apply(log.step(7, .deliveryPending, agent: "ann"))
        _ = board.apply(log.step(7, .delivered))
        _ = board.apply(log.step(7, .held, heldBy: "ann"))
        XCTAssertEqual(evaluate(&e, at: 120), [])
        let fired = try XCTUnwrap(evaluate(&e, at: 121).first?.alert)
        XCTAssertEqual(fired.rule, .heldCall)
        XCTAssertEqual(fired.agent, "ann")
        XCTAssertEqual(fired.interaction, 7)
        XCTAssertEqual(fired.severity, .warning)
        XCTAssertTrue(fired.summary.contains("Ann Lee"), fired.summary)
        log.advance(130)
        _ = board.apply(log.step(7, .delivered))
        XCTAssertEqual(evaluate(&e, at: 0).map(\.alert.state), [.resolved])
    }

    func testCallersWaitingWithNoAgentReadyFiresAfterItsForAndResolvesWhenAnAgentIsFree() throws {
        var e = AlertEvaluator(configuration: try only([.noAgentReady: ""]))
        queued(1)
        XCTAssertEqual(evaluate(&e, at: 1), [], "Ann is available")
        queued(2)
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        XCTAssertEqual(evaluate(&e, at: 2), [])
        XCTAssertEqual(evaluate(&e, at: 11), [], "10 s for by default")
        let fired = try XCTUnwrap(evaluate(&e, at: 12).first?.alert)
        XCTAssertEqual(fired.rule, .noAgentReady)
        XCTAssertEqual(fired.figures["waiting"], 1)
        XCTAssertEqual(fired.figures["readyAgents"], 0)
        _ = board.apply(log.step(1, .completed))
        XCTAssertEqual(evaluate(&e, at: 13), [])
        XCTAssertEqual(evaluate(&e, at: 18).map(\.alert.state), [.resolved], "5 s clearFor by default")
    }

    func window(_ offered: Int, serviceLevel: Double?, abandon: Double?) -> [Double: [String: WindowFigures]] {
        [600: ["sales": WindowFigures(offered: offered, serviceLevelPercent: serviceLevel, abandonPercent: abandon)]]
    }

    func testServiceLevelAndAbandonRateJudgeTheWindowFiguresSQLComputedOnceThereAreEnoughCalls() throws {
        var e = AlertEvaluator(configuration: try only([
            .serviceLevel: "\"for\": 0, \"window\": 600, \"minOffered\": 4",
            .abandonRate: "\"threshold\": 30, \"for\": 0, \"window\": 600, \"minOffered\": 4",
        ]))
        XCTAssertEqual(e.windowLengths(queues: board.queues.values), [600])
        XCTAssertEqual(e.evaluate(board: board, stream: up, now: log.clock), [], "no figures read yet")
        XCTAssertEqual(e.evaluate(board: board, stream: up, windows: window(3, serviceLevel: 25, abandon: 50), now: log.clock), [],
                       "3 calls in the window: not enough to judge")
        let fired = e.evaluate(board: board, stream: up, windows: window(4, serviceLevel: 25, abandon: 50), now: log.clock).map(\.alert)
        XCTAssertEqual(fired.map(\.rule), [.abandonRate, .serviceLevel])
        XCTAssertEqual(fired.first?.figures["abandonPercent"], 50)
        XCTAssertEqual(fired.last?.figures["serviceLevelPercent"], 25)
        XCTAssertEqual(fired.last?.figures["offered"], 4)
        XCTAssertEqual(fired.last?.figures["threshold"], 80, "the queue's own target")
        // Figures not read this time, or too few calls: no verdict, the alerts stay.
        XCTAssertEqual(e.evaluate(board: board, stream: up, now: log.clock), [])
        XCTAssertEqual(e.evaluate(board: board, stream: up, windows: window(1, serviceLevel: 100, abandon: 0), now: log.clock), [])
        // Hysteresis: back at the target is not enough; 5 points past it is.
        XCTAssertEqual(e.evaluate(board: board, stream: up, windows: window(10, serviceLevel: 84, abandon: 26), now: log.clock), [])
        let resolved = e.evaluate(board: board, stream: up, windows: window(10, serviceLevel: 85, abandon: 25), now: log.clock)
        XCTAssertEqual(resolved.map(\.alert.rule), [.abandonRate, .serviceLevel])
        XCTAssertEqual(resolved.map(\.alert.state), [.resolved, .resolved])
    }

    func testWindowLengthsFollowTheRulesInForce() throws {
        board.queues["vip"] = QueueConfig(id: "vip", name: "VIP")
        let config = try configuration("""
            {"defaults": {"abandon_rate": {"enabled": false}},
             "queues": {"vip": {"service_level": {"window": 900}, "abandon_rate": {"enabled": true, "window": 1800}}}}
            """)
        XCTAssertEqual(AlertEvaluator(configuration: config).windowLengths(queues: board.queues.values), [3600, 900, 1800])
        let off = try only([.longestWait: ""])
        XCTAssertEqual(AlertEvaluator(configuration: off).windowLengths(queues: board.queues.values), [])
    }

    func testTheStreamIsStaleWhileTheDatabaseIsDownOrTheTailerIsSilent() throws {
        var e = AlertEvaluator(configuration: try only([.streamStale: "\"threshold\": 10"]))
        XCTAssertEqual(evaluate(&e, at: 0), [])
        let down = evaluate(&e, at: 1, stream: StreamHealth(databaseUp: false, tailerSilentSeconds: 0))
        XCTAssertEqual(down.map(\.alert.rule), [.streamStale])
        XCTAssertNil(down.first?.alert.queue)
        XCTAssertEqual(evaluate(&e, at: 2).map(\.alert.state), [.resolved])
        XCTAssertEqual(evaluate(&e, at: 3, stream: StreamHealth(databaseUp: true, tailerSilentSeconds: 11)).count, 1)
    }

    func testPerQueueOverridesWinOverDefaultsWhichWinOverTheQueueThresholds() throws {
        board.queues["vip"] = QueueConfig(id: "vip", name: "VIP", waitAlarmSeconds: 30)
        let config = try configuration("""
            {"defaults": {"longest_wait": {"severity": "warning"}, "abandon_rate": {"threshold": 25}},
             "queues": {"vip": {"longest_wait": {"threshold": 15, "severity": "critical"}, "abandon_rate": {"enabled": false}}}}
            """)
        XCTAssertEqual(config.settings(.longestWait, queue: board.queues["sales"]).threshold, 60)
        XCTAssertEqual(config.settings(.longestWait, queue: board.queues["sales"]).severity, .warning)
        XCTAssertEqual(config.settings(.longestWait, queue: board.queues["vip"]).threshold, 15)
        XCTAssertEqual(config.settings(.longestWait, queue: board.queues["vip"]).clear, 12)
        XCTAssertEqual(config.settings(.longestWait, queue: board.queues["vip"]).severity, .critical)
        XCTAssertEqual(config.settings(.abandonRate, queue: board.queues["sales"]).threshold, 25)
        XCTAssertFalse(config.settings(.abandonRate, queue: board.queues["vip"]).enabled)
        XCTAssertEqual(config.settings(.serviceLevel, queue: board.queues["sales"]).threshold, 80)
        XCTAssertEqual(config.settings(.serviceLevel, queue: board.queues["sales"]).clear, 85)
    }

    func testARestoredAlertKeepsItsIdAndIsNotDecidedAgain() throws {
        var e = AlertEvaluator(configuration: try only([.longestWait: ""]))
        queued(1)
        let fired = try XCTUnwrap(evaluate(&e, at: 61).first?.alert)
        var restarted = AlertEvaluator(configuration: try only([.longestWait: ""]))
        restarted.restore([fired])
        XCTAssertEqual(evaluate(&restarted, at: 70), [])
        log.advance(71)
        _ = board.apply(log.step(1, .deliveryPending, agent: "ann"))
        XCTAssertEqual(evaluate(&restarted, at: 0).map(\.alert.id), [fired.id])
    }

    func testTheConfigurationRefusesWhatItDoesNotUnderstandAndSaysWhere() {
        let cases: [(String, String)] = [
            (#"{"evaluationSeconds": 2}"#, "evaluationSeconds"),
            (#"{"defaults": {"longest_wiat": {}}}"#, "defaults.longest_wiat"),
            (#"{"defaults": {"longest_wait": {"treshold": 5}}}"#, "defaults.longest_wait.treshold"),
            (#"{"queues": {"sales": {"service_level": {"threshold": 120}}}}"#, "queues.sales.service_level.threshold"),
            (#"{"defaults": {"held_call": {"enabled": 1}}}"#, "defaults.held_call.enabled"),
            (#"{"receivers": [{"name": "x", "type": "webhook", "url": "http://h/"}]}"#, "receivers[0].secrets"),
            (#"{"receivers": [{"name": "x", "type": "webhook", "url": "http://h/", "secrets": ["abc"]}]}"#, "receivers[0].secrets[0]"),
            (#"{"receivers": [{"name": "x", "type": "pager", "url": "http://h/"}]}"#, "receivers[0].type"),
            (#"{"receivers": [{"name": "x", "type": "alertmanager", "url": "ftp://h/"}]}"#, "receivers[0].url"),
            (#"{"receivers": [{"name": "a", "type": "alertmanager", "url": "http://h/"}, {"name": "a", "type": "alertmanager", "url": "http://i/"}]}"#, "receivers"),
            (#"{"colour": "red"}"#, "colour"),
            ("[1]", ""),
        ]
        for (json, path) in cases {
            XCTAssertThrowsError(try configuration(json), json) { error in
                XCTAssertEqual((error as? AlertConfiguration.Error)?.path, path, "\(json): \(error)")
            }
        }
        XCTAssertEqual(try configuration("{}").leaseSeconds, 240)
        XCTAssertEqual(try configuration(#"{"evaluationSeconds": 1, "resendSeconds": 5}"#).leaseSeconds, 20)
    }

    /// The abandon-rate rule takes the queue's abandon alarm as its default threshold; an
    /// override in the configuration still wins, and a queue without one keeps 20 %.
    func testTheAbandonRateThresholdDefaultsToTheQueuesAbandonAlarm() {
        let queue = QueueConfig(id: "q", name: "Q", abandonWarningPercent: 5, abandonAlarmPercent: 12)
        XCTAssertEqual(RuleSettings.resolve(.abandonRate, queue: queue, override: RuleOverride()).threshold, 12)
        XCTAssertEqual(RuleSettings.resolve(.abandonRate, queue: queue, override: RuleOverride(threshold: 30)).threshold, 30)
        XCTAssertEqual(RuleSettings.resolve(.abandonRate, queue: QueueConfig(id: "q", name: "Q"), override: RuleOverride()).threshold, 20)
    }
}
