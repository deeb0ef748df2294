import Foundation
import InteractionModel
import InteractionStore
import XCTest

/// Base for tests against the real PostgreSQL that scripts/test starts
/// (`SIGHTLINE_TEST_DATABASE_URL`). Each test gets its own queue and agents.
class StoreTestCase: XCTestCase {
    static var url: String? { ProcessInfo.processInfo.environment["SIGHTLINE_TEST_DATABASE_URL"] }
    static let migrated: Result<Void, Error> = Result {
        guard let url else { return }
        let connection = try PostgresConnection(url)
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("sql").path
        try Migrator(directory: dir).migrate(connection)
    }

    var store: InteractionStore!
    var queue = ""
    var ann = ""
    var bob = ""
    var ivr = ""

    override func setUpWithError() throws {
        guard let url = Self.url else {
            throw XCTSkip("SIGHTLINE_TEST_DATABASE_URL is not set: run scripts/test")
        }
        try Self.migrated.get()
        store = try InteractionStore(conninfo: url)
        let tag = UUID().uuidString.prefix(8).lowercased()
        queue = "q-\(tag)"
        ann = "ann-\(tag)"
        bob = "bob-\(tag)"
        ivr = "ivr-\(tag)"
        try store.upsertQueue(QueueConfig(id: queue, name: "Test \(tag)", serviceLevelSeconds: 20))
        try store.upsertAgent(AgentConfig(id: ann, name: "Ann", queues: [queue]))
        try store.upsertAgent(AgentConfig(id: bob, name: "Bob", queues: [queue]))
        try store.upsertAgent(AgentConfig(id: ivr, name: "IVR", isVoiceApplication: true))
    }

    func newCall() throws -> Int64 {
        try store.createInteraction(callID: "call-\(UUID().uuidString.prefix(12))")
    }

    /// Drives a new interaction to `state` through legal steps; agent `ann` accepts.
    func interaction(in state: InteractionState) throws -> Int64 {
        let id = try newCall()
        let path: [(InteractionState, String?)]
        switch state {
        case .idle: path = []
        case .dataCollection: path = [(.dataCollection, nil)]
        case .queued: path = [(.queued, nil)]
        case .deliveryPending: path = [(.queued, nil), (.deliveryPending, ann)]
        case .delivered: path = [(.queued, nil), (.deliveryPending, ann), (.delivered, nil)]
        case .held: path = [(.queued, nil), (.deliveryPending, ann), (.delivered, nil), (.held, ann)]
        case .afterCallWork: path = [(.queued, nil), (.deliveryPending, ann), (.delivered, nil), (.afterCallWork, nil)]
        case .completed: path = [(.completed, nil)]
        }
        for (to, agent) in path {
            try store.transition(id, to: to, agent: agent, queue: to == .queued ? queue : nil)
        }
        return id
    }

    /// The interaction's row and its log, to prove a refusal changed nothing.
    func fingerprint(_ id: Int64) throws -> String {
        let r = try store.connection.query("""
            select row_to_json(i)::text, (select count(*) from sightline.transitions where interaction_id = i.id),
                   (select count(*) from sightline.transitions), (select count(*) from sightline.transfers),
                   (select count(*) from sightline.interactions), (select count(*) from sightline.interaction_history)
              from sightline.interactions i where id = $1
            """, [String(id)])
        return (0..<r.columnCount).map { r.string(0, $0) ?? "null" }.joined(separator: "|")
    }

    /// Asserts `body` is refused with `refusal` and changes nothing about `id` (or anything else).
    func assertRefused(_ refusal: Refusal, _ id: Int64, namesInteraction: Bool = true, file: StaticString = #filePath, line: UInt = #line,
                       _ body: () throws -> Void) throws {
        let before = try fingerprint(id)
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case .refused(let got, let message, _) = error as? StoreError else {
                return XCTFail("expected refusal \(refusal), got \(error)", file: file, line: line)
            }
            XCTAssertEqual(got, refusal, message, file: file, line: line)
            XCTAssertTrue(!namesInteraction || message.contains("\(id)"), "message names the interaction: \(message)",
                          file: file, line: line)
        }
        XCTAssertEqual(try fingerprint(id), before, "a refusal changed nothing", file: file, line: line)
    }

    func states(of id: Int64) throws -> [InteractionState] {
        try store.transitions(of: id).map(\.to)
    }

    /// The last position of the log (stream order), or the start when it is empty.
    func lastPosition() throws -> LogPosition {
        let r = try store.connection.query("select t.order_tx::text, t.id from sightline.transitions t order by t.order_tx desc, t.id desc limit 1")
        guard r.rowCount == 1 else { return .start }
        return LogPosition(orderTx: try XCTUnwrap(r.uint64(0, 0)), id: try XCTUnwrap(r.int64(0, 1)))
    }

    /// Runs SQL on the test's connection; refusals come back as `StoreError`, as from the store.
    @discardableResult
    func sql(_ text: String, _ parameters: [String?] = []) throws -> PostgresResult {
        do {
            return try store.connection.query(text, parameters)
        } catch let error as PostgresError {
            throw StoreError(error)
        }
    }
}
