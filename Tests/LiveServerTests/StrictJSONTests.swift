@testable import LiveServer
import XCTest

final class StrictJSONTests: XCTestCase {
    func valid(_ s: String) -> Bool { StrictJSON.isValid(Array(s.utf8)) }

    func testWellFormedValuesPass() {
        for s in [#"{"type":"hello","queues":["a","b"],"resume":null}"#, "[]", "{}", " 1 ", "-0.5e+10", #""\u00e9\n""#,
                  "true", #"{"a":{"b":[1,2,{"c":false}]}}"#, "[\n1,\t2\r]"] {
            XCTAssertTrue(valid(s), s)
        }
    }

    func testWhatFoundationWouldForgiveIsRefused() {
        for s in [#"{"type":"hello",}"#, "[1,]", "[01]", "{'a':1}", #"{"a" 1}"#, "", " ", "1 2", "nul", "[1.]", "-",
                  "\"tab\there\"", #""\x""#, #""\u12""#, "{\"a\":1}}", "NaN", "[1e]"] {
            XCTAssertFalse(valid(s), s)
        }
    }

    func testNestingIsBounded() {
        XCTAssertTrue(valid(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        XCTAssertFalse(valid(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)))
        XCTAssertFalse(valid(String(repeating: "[", count: 100_000)), "no stack exhaustion")
    }
}
