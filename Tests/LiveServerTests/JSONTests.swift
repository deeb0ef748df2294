import Foundation
@testable import LiveServer
import XCTest

final class JSONTests: XCTestCase {
    /// Found by schemathesis: a presence change dated 1046 came back as "...:53.-350Z".
    func testTimesBefore1970AreValidISO8601() {
        XCTAssertEqual(isoTime(Date(timeIntervalSince1970: -0.25)), "1969-12-31T23:59:59.750Z")
        XCTAssertEqual(isoTime(Date(timeIntervalSince1970: -1)), "1969-12-31T23:59:59.000Z")
        XCTAssertEqual(isoTime(Date(timeIntervalSince1970: 1.25)), "1970-01-01T00:00:01.250Z")
        let old = isoTime(Date(timeIntervalSince1970: -29_000_000_000.25))
        XCTAssertNotNil(parseISOTime(old), old)
        XCTAssertFalse(old.contains("-3"), old)
    }
}
