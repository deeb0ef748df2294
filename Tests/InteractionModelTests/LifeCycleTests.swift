import InteractionModel
import XCTest

final class LifeCycleTests: XCTestCase {
    /// The table of DESIGN.md section 1, written out pair by pair.
    func testTableIsTheSeedsLifeCycle() {
        let expected: [(InteractionState, InteractionState, LifeCycle.StepKind)] = [
            (.idle, .dataCollection, .writer), (.idle, .queued, .writer), (.idle, .deliveryPending, .writer),
            (.idle, .completed, .writer), (.dataCollection, .queued, .writer), (.dataCollection, .completed, .writer),
            (.queued, .deliveryPending, .writer), (.queued, .completed, .writer),
            (.deliveryPending, .delivered, .writer), (.deliveryPending, .completed, .writer),
            (.delivered, .held, .writer), (.delivered, .afterCallWork, .writer), (.delivered, .queued, .transferBegin),
            (.held, .delivered, .writer), (.queued, .afterCallWork, .transferOutcome),
            (.queued, .delivered, .transferOutcome), (.afterCallWork, .completed, .writer),
        ]
        var count = 0
        for from in InteractionState.allCases {
            for to in InteractionState.allCases {
                let want = expected.first { $0.0 == from && $0.1 == to }?.2
                XCTAssertEqual(LifeCycle.kind(from: from, to: to), want, "\(from) -> \(to)")
                if want != nil { count += 1 }
            }
        }
        XCTAssertEqual(count, 17)
        XCTAssertTrue(LifeCycle.writerTargets(from: .completed).isEmpty)
        XCTAssertEqual(LifeCycle.writerTargets(from: .held), [.delivered])
    }

    func testPositionsOrderAndRoundTrip() {
        let a = LogPosition(orderTx: 10, id: 500)
        let b = LogPosition(orderTx: 11, id: 3)
        XCTAssertLessThan(a, b)
        XCTAssertEqual(LogPosition("10.500"), a)
        XCTAssertEqual(LogPosition(a.description), a)
        for bad in ["", "10", "10.", ".5", "a.b", "1.2.3", "-1.5", "10.-5", "99999999999999999999999.1"] {
            XCTAssertNil(LogPosition(bad), bad)
        }
    }
}
