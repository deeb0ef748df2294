import AlertDelivery
import Foundation
import InteractionModel
import XCTest

final class PayloadTests: XCTestCase {
    let since = Date(timeIntervalSince1970: 1_800_000_000)

    func alert(state: Alert.State = .firing) -> Alert {
        Alert(id: "longest_wait-00-1800000000000", rule: .longestWait, severity: .critical, queue: "sales & co", agent: nil,
              interaction: nil, summary: "Sales: a caller has waited 75 s", figures: ["longestWaitSeconds": 75, "threshold": 60],
              since: since, state: state, resolvedAt: state == .resolved ? since.addingTimeInterval(90) : nil)
    }

    /// The test vector of the Standard Webhooks reference libraries.
    func testTheSignatureMatchesTheStandardWebhooksTestVector() {
        let signature = StandardWebhook.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: #"{"test": 2432232314}"#,
            secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        XCTAssertEqual(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    func testEverySecretSignsDuringARotationAndATamperedBodyFails() {
        let old = "whsec_" + Data("old-secret-0123456789".utf8).base64EncodedString()
        let new = "whsec_" + Data("new-secret-0123456789".utf8).base64EncodedString()
        let header = StandardWebhook.signature(id: "e1", timestamp: 10, body: "{}", secrets: [old, new])
        XCTAssertEqual(header.split(separator: " ").count, 2)
        XCTAssertTrue(StandardWebhook.verify(id: "e1", timestamp: 10, body: "{}", header: header, secret: new))
        XCTAssertTrue(StandardWebhook.verify(id: "e1", timestamp: 10, body: "{}", header: header, secret: old))
        XCTAssertFalse(StandardWebhook.verify(id: "e1", timestamp: 10, body: "{ }", header: header, secret: new))
        XCTAssertFalse(StandardWebhook.verify(id: "e2", timestamp: 10, body: "{}", header: header, secret: new))
        XCTAssertFalse(StandardWebhook.verify(id: "e1", timestamp: 11, body: "{}", header: header, secret: new))
    }

    func testAlertmanagerGetsALeaseWhileFiringAndTheResolutionTimeWhenResolved() throws {
        let now = since.addingTimeInterval(30)
        let firing = AlertmanagerPayload.alert(alert(), now: now, leaseSeconds: 240, boardURL: "http://b:8080/")
        let labels = try XCTUnwrap(firing["labels"] as? [String: String])
        XCTAssertEqual(labels, ["alertname": "QueueLongestWaitHigh", "severity": "critical", "queue": "sales & co", "service": "sightline"])
        XCTAssertEqual(firing["endsAt"] as? String, Timestamp.text(now.addingTimeInterval(240)))
        XCTAssertEqual(firing["startsAt"] as? String, Timestamp.text(since))
        XCTAssertEqual(firing["generatorURL"] as? String, "http://b:8080/?queues=sales%20%26%20co")
        XCTAssertEqual((firing["annotations"] as? [String: String])?["longestWaitSeconds"], "75")
        let resolved = AlertmanagerPayload.alert(alert(state: .resolved), now: now.addingTimeInterval(600), leaseSeconds: 240,
                                                 boardURL: "http://b:8080/")
        XCTAssertEqual(resolved["endsAt"] as? String, Timestamp.text(since.addingTimeInterval(90)))
    }

    func testAHeldCallNamesItsAgent() throws {
        var a = alert()
        a.rule = .heldCall
        a.agent = "ann"
        a.interaction = 42
        let labels = try XCTUnwrap(AlertmanagerPayload.alert(a, now: since, leaseSeconds: 4, boardURL: "http://b/")["labels"] as? [String: String])
        XCTAssertEqual(labels["agent"], "ann")
        XCTAssertEqual(labels["interaction"], "42")
        XCTAssertEqual(labels["alertname"], "CallHeldTooLong")
    }

    func testTheAlertJSONReadsBackAsTheSameAlert() {
        for a in [alert(), alert(state: .resolved)] {
            XCTAssertEqual(AlertJSON.decode(AlertJSON.text(a)), a)
        }
        XCTAssertNil(AlertJSON.decode(#"{"id": "x"}"#))
    }

    func testRetriesFollowTheScheduleWithJitterHonourRetryAfterAndEnd() {
        let schedule: [Double] = [5, 300]
        XCTAssertEqual(RetryPlan.delay(afterFailures: 1, schedule: schedule, retryAfter: nil, jitter: 0), 5)
        XCTAssertEqual(RetryPlan.delay(afterFailures: 1, schedule: schedule, retryAfter: nil, jitter: 1), 6)
        XCTAssertEqual(RetryPlan.delay(afterFailures: 2, schedule: schedule, retryAfter: nil, jitter: -1), 240)
        XCTAssertEqual(RetryPlan.delay(afterFailures: 1, schedule: schedule, retryAfter: 120, jitter: 0), 120)
        XCTAssertEqual(RetryPlan.delay(afterFailures: 1, schedule: schedule, retryAfter: 1e9, jitter: 0), 86400)
        XCTAssertNil(RetryPlan.delay(afterFailures: 3, schedule: schedule, retryAfter: nil, jitter: 0))
    }
}
