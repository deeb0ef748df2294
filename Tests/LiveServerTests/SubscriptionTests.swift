import Foundation
import InteractionModel
@testable import LiveServer
import XCTest

final class SubscriptionTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func hello(_ s: inout Subscription, _ text: String, canResume: Bool = true, token: Bool = true) -> [Subscription.Action] {
        s.received(text, canResume: { _ in canResume }, admit: { _ in
            token ? .success(Principal(tokenID: 1, name: "t", role: .supervisor, queues: nil)) : .failure(.unknown)
        })
    }

    func testHelloGivesASnapshotOrAResume() {
        var s = Subscription(openedAt: t0)
        XCTAssertFalse(s.isLive)
        XCTAssertEqual(hello(&s, #"{"type":"hello","token":"x"}"#), [.sendSnapshot])
        XCTAssertTrue(s.isLive)
        XCTAssertTrue(s.wants(queue: nil))
        var r = Subscription(openedAt: t0)
        XCTAssertEqual(hello(&r, #"{"type":"hello","resume":"10.5","queues":["sales"]}"#),
                       [.resume(from: LogPosition(orderTx: 10, id: 5))])
        XCTAssertTrue(r.wants(queue: "sales"))
        XCTAssertFalse(r.wants(queue: "support"))
        XCTAssertFalse(r.wants(queue: nil))
        var old = Subscription(openedAt: t0)
        XCTAssertEqual(hello(&old, #"{"type":"hello","resume":"10.5"}"#, canResume: false), [.sendSnapshot])
        XCTAssertEqual(hello(&old, #"{"type":"ping"}"#), [.sendPong])
    }

    func testBadMessagesClose() {
        for text in ["nope", "[]", #"{"kind":"hello"}"#, #"{"type":"ping"}"#, #"{"type":"hello","queues":"a"}"#,
                     #"{"type":"hello","queues":[1]}"#, #"{"type":"hello","resume":"x.y"}"#, #"{"type":"hello","token":5}"#,
                     #"{"type":"dance"}"#] {
            var s = Subscription(openedAt: t0)
            let actions = hello(&s, text)
            guard case .close(4400, let reason)? = actions.first else { return XCTFail("\(text): \(actions)") }
            XCTAssertFalse(reason.isEmpty)
            XCTAssertEqual(hello(&s, #"{"type":"hello"}"#), [], "nothing after close")
        }
        var s = Subscription(openedAt: t0)
        XCTAssertEqual(hello(&s, #"{"type":"hello","token":"bad"}"#, token: false), [.close(code: 4401, reason: "token not recognised")])
    }

    func testHelloTimeoutAndSlowClients() {
        var s = Subscription(openedAt: t0)
        XCTAssertEqual(s.tick(now: t0 + 9), [])
        guard case .close(4408, _)? = s.tick(now: t0 + 10).first else { return XCTFail() }
        var slow = Subscription(openedAt: t0)
        _ = hello(&slow, #"{"type":"hello"}"#)
        XCTAssertEqual(slow.overflowed(now: t0), [.sendSnapshot])
        XCTAssertEqual(slow.overflowed(now: t0 + 1), [.sendSnapshot])
        XCTAssertEqual(slow.overflowed(now: t0 + 2), [.sendSnapshot])
        guard case .close(4429, _)? = slow.overflowed(now: t0 + 3).first else { return XCTFail() }
        var recovering = Subscription(openedAt: t0)
        _ = hello(&recovering, #"{"type":"hello"}"#)
        for minute in 0..<10 {
            XCTAssertEqual(recovering.overflowed(now: t0 + Double(minute) * 61), [.sendSnapshot], "old resyncs are forgiven")
        }
    }

    func testDeltaLogCoversAWindow() {
        var log = DeltaLog(capacity: 3, floor: LogPosition(orderTx: 5, id: 0))
        for i in 1...5 {
            log.append(.init(position: LogPosition(orderTx: 5, id: Int64(i)), queue: nil, json: "\(i)"))
        }
        XCTAssertEqual(log.count, 3)
        XCTAssertEqual(log.floor, LogPosition(orderTx: 5, id: 2))
        let newest = LogPosition(orderTx: 5, id: 5)
        XCTAssertFalse(log.covers(LogPosition(orderTx: 5, id: 1), newest: newest))
        XCTAssertTrue(log.covers(LogPosition(orderTx: 5, id: 2), newest: newest))
        XCTAssertFalse(log.covers(LogPosition(orderTx: 6, id: 0), newest: newest), "a position from the future")
        XCTAssertEqual(log.after(LogPosition(orderTx: 5, id: 2)).map(\.json), ["3", "4", "5"])
        XCTAssertEqual(log.after(LogPosition(orderTx: 5, id: 4)).map(\.json), ["5"])
        XCTAssertEqual(log.after(newest).map(\.json), [])
        for i in 6...20 { log.append(.init(position: LogPosition(orderTx: 5, id: Int64(i)), queue: nil, json: "\(i)")) }
        XCTAssertEqual(log.after(LogPosition(orderTx: 5, id: 17)).map(\.json), ["18", "19", "20"])
    }

    func testBackoffDoublesAndResets() {
        var b = Backoff(initial: 0.25, maximum: 2)
        XCTAssertEqual(b.next(jitter: 0.5), 0.25, accuracy: 1e-9)
        XCTAssertEqual(b.next(jitter: 0.5), 0.5, accuracy: 1e-9)
        XCTAssertEqual(b.next(jitter: 0.5), 1.0, accuracy: 1e-9)
        XCTAssertEqual(b.next(jitter: 0.5), 2.0, accuracy: 1e-9)
        XCTAssertEqual(b.next(jitter: 0.5), 2.0, accuracy: 1e-9)
        XCTAssertEqual(b.next(jitter: 0), 1.5, accuracy: 1e-9)
        b.succeeded()
        XCTAssertEqual(b.next(jitter: 0.5), 0.25, accuracy: 1e-9)
    }

    func testJSONEscapingAndShapes() throws {
        var w = JSONWriter()
        w.object { o in
            o.field("s", string: "quote \" backslash \\ newline \n tab \t bell \u{07} é")
            o.field("n", int: Int64(42))
            o.field("d", double: 1.5)
            o.field("nil", string: nil)
        }
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.text.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["s"] as? String, "quote \" backslash \\ newline \n tab \t bell \u{07} é")
        XCTAssertEqual(parsed["n"] as? Int, 42)
        XCTAssertTrue(parsed["nil"] is NSNull)
        XCTAssertEqual(isoTime(Date(timeIntervalSince1970: 1_800_000_000.1234)), "2027-01-15T08:00:00.123Z")
    }

    func testIngestParsing() throws {
        let ok = try IngestOperation.parse(["to": "queued", "queue": "sales", "at": "2026-11-24T10:00:00Z"], op: "transition", interaction: 7)
        guard case .transition(.id(7), "queued", nil, "sales", .some) = ok else { return XCTFail("\(ok)") }
        XCTAssertThrowsError(try IngestOperation.parse(["to": 5], op: "transition", interaction: 7))
        XCTAssertThrowsError(try IngestOperation.parse(["to": "queued", "agnet": "x"], op: "transition", interaction: 7))
        XCTAssertThrowsError(try IngestOperation.parse(["callId": "c", "at": "soon"], op: "create"))
        let batch = try IngestOperation.parseBatch(["operations": [["op": "create", "callId": "c"],
                                                                   ["op": "transition", "interaction": "$0", "to": "queued"]]])
        XCTAssertEqual(batch.count, 2)
        XCTAssertThrowsError(try IngestOperation.parseBatch(["operations": [["op": "transition", "interaction": "$0", "to": "queued"]]]))
        XCTAssertThrowsError(try IngestOperation.parseBatch(["operations": [["op": "create", "callId": true]]]))
        XCTAssertThrowsError(try IngestOperation.parseBatch(["operations": []]))
    }
}
