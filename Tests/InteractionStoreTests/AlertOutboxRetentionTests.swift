import Foundation
import InteractionStore
import XCTest

/// sql/022_alert_outbox_retention.sql: what is trimmed and what is kept.
final class AlertOutboxRetentionTests: StoreTestCase {
    /// An event of `alert` decided `daysAgo` days ago with one delivery per status; its seq.
    @discardableResult
    func event(_ alert: String, _ kind: String, daysAgo: Double, deliveries: [String]) throws -> Int64 {
        let r = try store.connection.query("""
            insert into sightline.alert_events (event_id, alert_id, kind, rule, queue_id, alert, decided_at)
            values ($1 || '.' || $2 || '.' || gen_random_uuid(), $1, $2, 'longest_wait', null, '{}'::jsonb,
                    now() - make_interval(secs => $3::float8 * 86400))
            returning seq
            """, [alert, kind, String(daysAgo)])
        let seq = try XCTUnwrap(r.int64(0, 0))
        for (n, status) in deliveries.enumerated() {
            try store.connection.query("""
                insert into sightline.alert_deliveries (event_seq, receiver, status) values ($1, $2, $3)
                """, [String(seq), "r\(n)", status])
        }
        return seq
    }

    func exists(_ seq: Int64) throws -> Bool {
        try store.connection.query("select count(*) from sightline.alert_events where seq = $1", [String(seq)]).int(0, 0) == 1
    }

    func testSettledDecisionsOlderThanTheRetentionGoAndWhatAFiringAlertRestsOnStays() throws {
        let tag = UUID().uuidString.prefix(8).lowercased()
        // Resolved 40 days ago: both of its decisions go, dead letter included.
        let oldFiring = try event("a-\(tag)", "firing", daysAgo: 41, deliveries: ["delivered", "dead"])
        let oldResolved = try event("a-\(tag)", "resolved", daysAgo: 40, deliveries: ["delivered", "delivered"])
        // Firing for 50 days: its only decision stays, however old.
        let stillFiring = try event("b-\(tag)", "firing", daysAgo: 50, deliveries: ["delivered"])
        // Old, but a delivery is still pending: stays until it is settled.
        let pending = try event("c-\(tag)", "resolved", daysAgo: 45, deliveries: ["delivered", "pending"])
        // Settled, but recent: stays.
        let recent = try event("d-\(tag)", "resolved", daysAgo: 2, deliveries: ["delivered"])
        // An alert that fired again: the old pair goes, the firing decision it rests on stays.
        let refired = [try event("e-\(tag)", "firing", daysAgo: 60, deliveries: []),
                       try event("e-\(tag)", "resolved", daysAgo: 59, deliveries: []),
                       try event("e-\(tag)", "firing", daysAgo: 31, deliveries: [])]

        let active = try store.connection.query("select count(*) from sightline.active_alerts").int(0, 0)
        let trimmed = try store.connection.query("select sightline.trim_alert_outbox(interval '30 days')").int64(0, 0)
        XCTAssertGreaterThanOrEqual(trimmed ?? 0, 4)
        XCTAssertFalse(try exists(oldFiring))
        XCTAssertFalse(try exists(oldResolved))
        XCTAssertEqual(try store.connection.query("select count(*) from sightline.alert_deliveries where event_seq = any($1::bigint[])",
                                                  ["{\(oldFiring),\(oldResolved)}"]).int(0, 0), 0, "deliveries go with their event")
        XCTAssertTrue(try exists(stillFiring))
        XCTAssertTrue(try exists(pending))
        XCTAssertTrue(try exists(recent))
        XCTAssertFalse(try exists(refired[0]))
        XCTAssertFalse(try exists(refired[1]))
        XCTAssertTrue(try exists(refired[2]))
        XCTAssertEqual(try store.connection.query("select count(*) from sightline.active_alerts").int(0, 0), active,
                       "the alerts firing are the same after a trim")

        // A bad retention is refused and trims nothing.
        XCTAssertThrowsError(try store.connection.query("select sightline.trim_alert_outbox(interval '-1 day')")) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, "SL013")
        }
        XCTAssertTrue(try exists(stillFiring))
    }
}
