@testable import LWS
import XCTest

final class ChunkedDecoderTests: XCTestCase {
    let create = Array(#"{"callId": "c-1", "x": 1}"#.utf8)  // 25 bytes

    func framed(_ parts: [[UInt8]], trailer: String = "") -> [UInt8] {
        var out: [UInt8] = []
        for p in parts { out += Array(String(p.count, radix: 16).utf8) + [13, 10] + p + [13, 10] }
        return out + Array("0\r\n\(trailer)\r\n".utf8)
    }

    func decode(_ bytes: [UInt8], limit: Int = 1 << 20) throws(ChunkedDecoder.Failure) -> (ChunkedDecoder.Progress, [UInt8]) {
        var d = ChunkedDecoder(maxBodyBytes: limit)
        let p = try d.feed(bytes)
        return (p, d.body)
    }

    func malformed(_ text: String, limit: Int = 1 << 20, _ message: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let (p, _) = try decode(Array(text.utf8), limit: limit)
            XCTFail("accepted \(text.debugDescription): \(p)", file: file, line: line)
        } catch .malformed(let m) {
            if let message { XCTAssertTrue(m.contains(message), m, file: file, line: line) }
        } catch {
            XCTFail("\(error) for \(text.debugDescription)", file: file, line: line)
        }
    }

    func testTwoChunksDecodeToTheBody() throws {
        let bytes = framed([Array(create[..<10]), Array(create[10...])])
        let (progress, body) = try decode(bytes)
        XCTAssertEqual(progress, .complete(unused: 0))
        XCTAssertEqual(body, create)
    }

    func testEveryByteSplitDecodesTheSame() throws {
        let bytes = framed([Array(create[..<7]), Array(create[7...])], trailer: "X-Check: 1\r\n")
        for split in 0...bytes.count {
            var d = ChunkedDecoder(maxBodyBytes: 1024)
            XCTAssertEqual(try d.feed(bytes[..<split]), split == bytes.count ? .complete(unused: 0) : .needMore, "split at \(split)")
            XCTAssertEqual(try d.feed(bytes[split...]), .complete(unused: 0), "split at \(split)")
            XCTAssertEqual(d.body, create)
            XCTAssertTrue(d.isComplete)
        }
        // One byte at a time.
        var d = ChunkedDecoder(maxBodyBytes: 1024)
        for (k, b) in bytes.enumerated() {
            XCTAssertEqual(try d.feed([b]), k == bytes.count - 1 ? .complete(unused: 0) : .needMore)
        }
        XCTAssertEqual(d.body, create)
    }

    func testExtensionsUpperCaseHexAndTrailersAreAccepted() throws {
        let text = "1A ; name=value;x\r\n" + String(repeating: "a", count: 26) + "\r\n0;end\r\nX-Sum: abc\r\nX-B: \r\n\r\n"
        let (p, body) = try decode(Array(text.utf8))
        XCTAssertEqual(p, .complete(unused: 0))
        XCTAssertEqual(body.count, 26)
    }

    func testBytesAfterTheLastChunkAreReportedUnused() throws {
        let (p, body) = try decode(Array("2\r\n{}\r\n0\r\n\r\nGET / HTTP/1.1\r\n".utf8))
        XCTAssertEqual(p, .complete(unused: 16))
        XCTAssertEqual(body, Array("{}".utf8))
    }

    func testAnEmptyBodyIsTheLastChunkAlone() throws {
        let (p, body) = try decode(Array("0\r\n\r\n".utf8))
        XCTAssertEqual(p, .complete(unused: 0))
        XCTAssertEqual(body, [])
    }

    func testAnUnfinishedBodyNeedsMore() throws {
        for text in ["", "2", "2\r", "2\r\n{", "2\r\n{}", "2\r\n{}\r\n", "2\r\n{}\r\n0\r\n", "2\r\n{}\r\n0\r\nX: 1\r\n"] {
            XCTAssertEqual(try decode(Array(text.utf8)).0, .needMore, text.debugDescription)
        }
    }

    func testMalformedFramingIsRefused() {
        malformed("zz\r\n{}\r\n0\r\n\r\n", "not hexadecimal")
        malformed("\r\n", "no size")
        malformed(";ext\r\n", "no size")
        malformed("-2\r\n{}\r\n0\r\n\r\n", "not hexadecimal")
        malformed("0x2\r\n{}\r\n0\r\n\r\n", "not hexadecimal")
        malformed("2\n{}\r\n0\r\n\r\n", "CRLF")
        malformed("2\r\n{}}\r\n0\r\n\r\n", "does not match")
        malformed("3\r\n{}\r\n0\r\n\r\n", "does not match")
        malformed("2\r\n{}\r\r\n0\r\n\r\n", "does not match")
        malformed("2\r\n{}\r\n0\r\nno colon\r\n\r\n", "trailer")
        malformed("2\r\n{}\r\n0\r\n: no name\r\n\r\n", "trailer")
        malformed("2;a\u{1}b\r\n{}\r\n0\r\n\r\n", "control")
        malformed("2\r\n{}\r\n0\r\n\r\r\n", "trailer")
    }

    func testLinesAreBounded() {
        malformed("2;" + String(repeating: "x", count: 2000) + "\r\n{}\r\n0\r\n\r\n", "longer than 1024")
        malformed(String(repeating: "0", count: 1030) + "2\r\n{}\r\n0\r\n\r\n", "longer than 1024")
        malformed("0\r\nX-A: " + String(repeating: "x", count: 2000) + "\r\n\r\n", "longer than 1024")
        malformed("0\r\n" + String(repeating: "X-A: " + String(repeating: "x", count: 900) + "\r\n", count: 10) + "\r\n",
                  "trailer section is longer")
        // Leading zeros within the line bound are fine.
        XCTAssertEqual(try? decode(Array((String(repeating: "0", count: 100) + "2\r\n{}\r\n0\r\n\r\n").utf8)).1, Array("{}".utf8))
    }

    func testTheBodyLimitCountsDecodedBytes() throws {
        // Exactly at the limit: framing overhead does not count.
        let full = [UInt8](repeating: 65, count: 1024)
        XCTAssertEqual(try decode(framed([Array(full[..<1000]), Array(full[1000...])]), limit: 1024).1, full)
        // One byte over, announced by a size line: refused before the data arrives.
        XCTAssertThrowsError(try decode(Array("401\r\n".utf8), limit: 1024)) { XCTAssertEqual($0 as? ChunkedDecoder.Failure, .tooLarge) }
        XCTAssertThrowsError(try decode(framed([full, [65]]), limit: 1024)) { XCTAssertEqual($0 as? ChunkedDecoder.Failure, .tooLarge) }
        // A size that would overflow an Int is too large, not a crash.
        XCTAssertThrowsError(try decode(Array("ffffffffffffffffffffffffffff\r\n".utf8))) {
            XCTAssertEqual($0 as? ChunkedDecoder.Failure, .tooLarge)
        }
    }
}
