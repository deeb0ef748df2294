@testable import LWS
import XCTest

final class OutgoingQueueTests: XCTestCase {
    func message(_ n: Int) -> OutgoingMessage { OutgoingMessage(bytes: [UInt8](repeating: 65, count: n)) }

    func testALimitBelowOneKilobyteIsRefused() {
        XCTAssertThrowsError(try OutgoingQueue(byteLimit: 0))
        XCTAssertThrowsError(try OutgoingQueue(byteLimit: 1023))
    }

    func testPushIsBoundedButOneMessageAlwaysFits() throws {
        var q = try OutgoingQueue(byteLimit: 1024)
        XCTAssertTrue(q.push(message(5000)), "a lone large message fits an empty queue")
        XCTAssertFalse(q.push(message(1)), "nothing more beyond the limit")
        XCTAssertEqual(q.queuedBytes, 5000)
        q.wrote(5000)
        XCTAssertTrue(q.isEmpty)
        XCTAssertTrue(q.push(message(600)))
        XCTAssertTrue(q.push(message(424)))
        XCTAssertFalse(q.push(message(1)))
        XCTAssertEqual(q.count, 2)
    }

    func testPartialWritesAdvanceTheHeadInOrder() throws {
        var q = try OutgoingQueue(byteLimit: 1 << 20)
        let a = message(100), b = message(50)
        XCTAssertTrue(q.push(a))
        XCTAssertTrue(q.push(b))
        q.wrote(40)
        XCTAssertTrue(q.head?.message === a)
        XCTAssertEqual(q.head?.offset, 40)
        XCTAssertEqual(q.queuedBytes, 110)
        q.wrote(60)
        XCTAssertTrue(q.head?.message === b)
        XCTAssertEqual(q.head?.offset, 0)
        q.wrote(500)   // more than is left: the head ends, nothing else moves
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.queuedBytes, 0)
    }

    func testAfterADiscardOneMessageFitsBehindTheStartedOne() throws {
        var q = try OutgoingQueue(byteLimit: 1024)
        _ = q.push(message(1000))
        _ = q.push(message(20))
        q.wrote(10)
        XCTAssertFalse(q.push(message(500)), "over the limit")
        q.discardUnstarted()
        XCTAssertTrue(q.push(message(5000)), "the snapshot fits behind the started message")
        XCTAssertFalse(q.push(message(1)), "and nothing more")
    }

    func testDiscardKeepsAMessageAlreadyStarted() throws {
        var q = try OutgoingQueue(byteLimit: 1 << 20)
        let a = message(100)
        _ = q.push(a)
        _ = q.push(message(10))
        q.wrote(30)
        q.discardUnstarted()
        XCTAssertEqual(q.count, 1)
        XCTAssertTrue(q.head?.message === a)
        XCTAssertEqual(q.queuedBytes, 70)
        q.wrote(70)
        _ = q.push(message(10))
        q.discardUnstarted()
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.queuedBytes, 0)
    }

    func testLeadingWholeMessagesFitTheBatchAndStopAtAStartedOrLargeOne() throws {
        var q = try OutgoingQueue(byteLimit: 1 << 20)
        for n in [100, 200, 300, 5000, 10] { _ = q.push(message(n)) }
        let overhead = { (n: Int) in LWSServer.frameHeaderBytes(n) }
        XCTAssertEqual(q.leadingWhole(maxBytes: 1 << 16, maxMessageBytes: 1000, overhead: overhead).map(\.count), [100, 200, 300],
                       "stops at the message larger than a batch takes")
        XCTAssertEqual(q.leadingWhole(maxBytes: 310, maxMessageBytes: 1000, overhead: overhead).map(\.count), [100, 200],
                       "102 + 204 bytes with headers fit in 310")
        q.wrote(50)
        XCTAssertTrue(q.leadingWhole(maxBytes: 1 << 16, maxMessageBytes: 1000, overhead: overhead).isEmpty, "the head is started")
    }

    func testFrameHeadersFollowRFC6455() {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 10)
        defer { p.deallocate() }
        XCTAssertEqual(LWSServer.writeFrameHeader(length: 125, to: p), 2)
        XCTAssertEqual([p[0], p[1]], [0x81, 125])
        XCTAssertEqual(LWSServer.writeFrameHeader(length: 126, to: p), 4)
        XCTAssertEqual([p[0], p[1], p[2], p[3]], [0x81, 126, 0, 126])
        XCTAssertEqual(LWSServer.writeFrameHeader(length: 65535, to: p), 4)
        XCTAssertEqual([p[2], p[3]], [0xff, 0xff])
        XCTAssertEqual(LWSServer.writeFrameHeader(length: 65536, to: p), 10)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: p, count: 10)), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0])
        for n in [0, 125, 126, 65535, 65536] {
            XCTAssertEqual(LWSServer.frameHeaderBytes(n), LWSServer.writeFrameHeader(length: n, to: p))
        }
    }

    func testManyPushesAndPopsStayCheap() throws {
        var q = try OutgoingQueue(byteLimit: 1 << 30)
        let m = message(8)
        for _ in 0..<200_000 { XCTAssertTrue(q.push(m)) }
        for _ in 0..<200_000 { q.wrote(8) }
        XCTAssertTrue(q.isEmpty)
    }
}

final class QueryItemsTests: XCTestCase {
    func testEmptyPairsAndNamesAreDropped() {
        for fragments in [[""], ["="], ["a=1", "="], ["=x"], ["", "", ""], ["==", "&"]] {
            let q = QueryItems(fragments: fragments)
            XCTAssertNil(q[""], "\(fragments)")
        }
        XCTAssertEqual(QueryItems(fragments: ["a=1", "="])["a"], "1")
        XCTAssertEqual(QueryItems(fragments: ["&"]).pairs.count, 1)
    }

    func testDecodedFragmentsAreNotDecodedAgain() {
        // lws hands "token=a&b%2Bc+d=e" for ?token=a%26b%252Bc%2Bd%3De: the value is kept whole.
        let q = QueryItems(fragments: ["token=a&b%2Bc+d=e", "subscribe"])
        XCTAssertEqual(q["token"], "a&b%2Bc+d=e")
        XCTAssertEqual(q["subscribe"], "")
        XCTAssertNil(q["missing"])
    }

    func testLaterPairsWin() {
        XCTAssertEqual(QueryItems(fragments: ["a=1", "a=2"])["a"], "2")
    }

    func testRawStringsAreSplitThenDecoded() {
        let q = QueryItems(raw: "a=%26x&&b=1+2&%zz=3&=4")
        XCTAssertEqual(q["a"], "&x")
        XCTAssertEqual(q["b"], "1 2")
        XCTAssertEqual(q["%zz"], "3")
        XCTAssertEqual(q.pairs.count, 3)
    }
}
