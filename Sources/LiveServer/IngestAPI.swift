import Foundation
import InteractionModel
import InteractionStore
import LWS

/// An HTTP-level failure: status, a short code and a message that says what to do.
struct APIError: Error, Sendable {
    var status: Int
    var code: String
    var message: String
    var hint: String?
    var sqlState: String?
    var index: Int?

    static func badRequest(_ message: String) -> APIError { APIError(status: 400, code: "bad_request", message: message) }

    static let unauthorized = APIError(status: 401, code: "unauthorized", message: "a valid token is required",
                                       hint: "send Authorization: Bearer TOKEN")

    var response: HTTPResponse { .json(status: status, json) }

    init(status: Int, code: String, message: String, hint: String? = nil, sqlState: String? = nil, index: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.sqlState = sqlState
        self.index = index
    }

    init(_ error: Error, index: Int? = nil) {
        switch error {
        case let e as APIError:
            self = e
        case StoreError.refused(let refusal, let message, let hint):
            self.init(status: refusal.httpStatus, code: refusal.code, message: message, hint: hint, sqlState: refusal.rawValue)
        case StoreError.unavailable(let message):
            self.init(status: 503, code: "database_unavailable", message: message, hint: "retry later")
        case let e as WriteOutcomeUnknown:
            self.init(status: 503, code: "write_outcome_unknown",
                      message: "the database connection broke during the write, which may or may not have been applied: \(e.message)",
                      hint: "send it again with the same Idempotency-Key header (a replay is then safe), or check before writing again")
        case StoreError.database(let e) where e.sqlState == "57014":
            self.init(status: 503, code: "query_timeout",
                      message: "the database took longer than the server allows (--api-statement-timeout-seconds) and the request was cancelled; nothing was changed",
                      hint: "ask for less (a shorter range, days instead of intervals, fewer queues or agents), or retry later")
        case StoreError.database(let e):
            self.init(status: 500, code: "database_error", message: e.message, sqlState: e.sqlState)
        default:
            self.init(status: 500, code: "internal_error", message: "\(error)")
        }
        self.index = index ?? self.index
    }

    var json: String {
        var w = JSONWriter()
        w.object { o in
            o.field("error") { w in
                w.object { o in
                    o.field("code", string: code)
                    o.field("message", string: message)
                    if let hint, !hint.isEmpty { o.field("hint", string: hint) }
                    if let sqlState { o.field("sqlstate", string: sqlState) }
                    if let index { o.field("index", int: index) }
                }
            }
        }
        return w.text
    }
}

/// One write an ACD asks for. In a batch, `interaction` may name the interaction created by an
/// earlier operation of the same batch ("$0", "$1", ...).
enum IngestOperation: Sendable, Equatable {
    enum Ref: Sendable, Equatable {
        case id(Int64)
        case result(Int)
    }

    case create(callID: String, at: Date?)
    case transition(Ref, to: String, agent: String?, queue: String?, at: Date?)
    case transfer(Ref, kind: String, target: String, agent: String?, at: Date?)
    /// An agent's presence (`sightline.set_presence`).
    case presence(agent: String, state: String, reason: String?, at: Date?)

    static let maxBatch = 1000

    /// Parses a JSON body of a single operation; `op` comes from the route when not in the body.
    static func parse(_ object: [String: Any], op routeOp: String? = nil, interaction routeID: Int64? = nil,
                      batchIndex: Int? = nil) throws -> IngestOperation {
        var fields = Fields(object, index: batchIndex)
        let op = try routeOp ?? fields.string("op", required: true)!
        let at = try fields.time("at")
        switch op {
        case "create":
            let callID = try fields.string("callId", required: true)!
            try fields.finish()
            return .create(callID: callID, at: at)
        case "transition":
            let ref = try routeID.map(Ref.id) ?? fields.ref("interaction", batchIndex: batchIndex)
            let to = try fields.string("to", required: true)!
            let agent = try fields.string("agent")
            let queue = try fields.string("queue")
            try fields.finish()
            return .transition(ref, to: to, agent: agent, queue: queue, at: at)
        case "transfer":
            let ref = try routeID.map(Ref.id) ?? fields.ref("interaction", batchIndex: batchIndex)
            let kind = try fields.string("kind", required: true)!
            let target = try fields.string("target", required: true)!
            let agent = try fields.string("agent")
            try fields.finish()
            return .transfer(ref, kind: kind, target: target, agent: agent, at: at)
        case "presence":
            let agent = try fields.string("agent", required: true, maxLength: 64)!
            let state = try fields.string("state", required: true)!
            let reason = try fields.string("reason", maxLength: 64)
            try fields.finish()
            return .presence(agent: agent, state: state, reason: reason, at: at)
        default:
            throw fields.error("op must be create, transition, transfer or presence")
        }
    }

    /// Parses `{"operations": [...]}` (an `idempotencyKey` is taken out before).
    static func parseBatch(_ object: [String: Any]) throws -> [IngestOperation] {
        guard let list = object["operations"] as? [Any] else {
            throw APIError.badRequest("a batch is {\"operations\": [ ... ]}")
        }
        guard !list.isEmpty, list.count <= maxBatch else {
            throw APIError.badRequest("a batch holds 1 to \(maxBatch) operations, not \(list.count)")
        }
        guard object.count == 1 else { throw APIError.badRequest("a batch has only \"operations\"") }
        return try list.enumerated().map { index, item in
            guard let op = item as? [String: Any] else {
                throw APIError(status: 400, code: "bad_request", message: "operation \(index) is not an object", index: index)
            }
            return try parse(op, batchIndex: index)
        }
    }

    /// Performs the operation; `results` holds the ids created by earlier operations of a batch.
    /// A presence operation gives id 0 (it names no interaction) and its change.
    func perform(_ store: InteractionStore, results: [Int64]) throws -> IngestResult {
        func resolve(_ ref: Ref) throws -> Int64 {
            switch ref {
            case .id(let id): return id
            case .result(let n):
                guard n < results.count else {
                    throw APIError.badRequest("$\(n) names an operation that has not run yet")
                }
                guard results[n] > 0 else { throw APIError.badRequest("$\(n) names a presence change, not an interaction") }
                return results[n]
            }
        }
        switch self {
        case .create(let callID, let at):
            return IngestResult(id: try store.createInteraction(callID: callID, at: at))
        case .transition(let ref, let to, let agent, let queue, let at):
            let id = try resolve(ref)
            return IngestResult(id: id, transition: try store.transition(id, to: to, agent: agent, queue: queue, at: at))
        case .transfer(let ref, let kind, let target, let agent, let at):
            return IngestResult(id: try store.beginTransfer(try resolve(ref), kind: kind, target: target, agent: agent, at: at))
        case .presence(let agent, let state, let reason, let at):
            return IngestResult(id: 0, presence: try store.setPresence(agent: agent, state: state, reason: reason, at: at))
        }
    }
}

/// What one operation did.
struct IngestResult: Sendable {
    var id: Int64
    var transition: Transition?
    var presence: PresenceChange?
}

/// Typed access to a JSON object's fields, refusing wrong types and unknown fields.
struct Fields {
    private let object: [String: Any]
    private var seen: Set<String> = []
    private let index: Int?

    init(_ object: [String: Any], index: Int? = nil) {
        self.object = object
        self.index = index
        if object["op"] != nil { seen.insert("op") }
    }

    func error(_ message: String) -> APIError {
        APIError(status: 400, code: "bad_request", message: (index.map { "operation \($0): " } ?? "") + message, index: index)
    }

    mutating func string(_ key: String, required: Bool = false, maxLength: Int = 200) throws -> String? {
        seen.insert(key)
        switch object[key] {
        case nil, is NSNull:
            if required { throw error("\"\(key)\" is required") }
            return nil
        case let s as String:
            guard !s.isEmpty, s.count <= maxLength else { throw error("\"\(key)\" must be 1 to \(maxLength) characters") }
            // A NUL would cut the text short on its way through libpq; other control characters
            // have no place in ids and names.
            guard !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw error("\"\(key)\" must not contain control characters")
            }
            return s
        default:
            throw error("\"\(key)\" must be a string")
        }
    }

    mutating func int(_ key: String, required: Bool = false, range: ClosedRange<Int64>) throws -> Int64? {
        seen.insert(key)
        switch object[key] {
        case nil, is NSNull:
            if required { throw error("\"\(key)\" is required") }
            return nil
        case let n as NSNumber where !isJSONBool(n):
            let d = n.doubleValue
            guard d.rounded() == d, let v = Int64(exactly: d), range.contains(v) else {
                throw error("\"\(key)\" must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        default:
            throw error("\"\(key)\" must be a number")
        }
    }

    mutating func bool(_ key: String) throws -> Bool? {
        seen.insert(key)
        switch object[key] {
        case nil, is NSNull: return nil
        case let n as NSNumber where isJSONBool(n): return n.boolValue
        default: throw error("\"\(key)\" must be true or false")
        }
    }

    mutating func strings(_ key: String) throws -> [String]? {
        seen.insert(key)
        switch object[key] {
        case nil, is NSNull: return nil
        case let list as [Any]:
            let s = list.compactMap { $0 as? String }
            guard s.count == list.count, s.count <= 1000 else { throw error("\"\(key)\" must be a list of strings") }
            guard !s.contains(where: { $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) else {
                throw error("\"\(key)\" must not contain control characters")
            }
            return s
        default: throw error("\"\(key)\" must be a list of strings")
        }
    }

    mutating func time(_ key: String) throws -> Date? {
        guard let text = try string(key, maxLength: 64) else { return nil }
        guard let date = parseISOTime(text) else {
            throw error("\"\(key)\" must be an ISO 8601 time such as 2026-11-24T10:15:02.120Z")
        }
        return date
    }

    mutating func ref(_ key: String, batchIndex: Int?) throws -> IngestOperation.Ref {
        seen.insert(key)
        switch object[key] {
        case let n as NSNumber where !isJSONBool(n):
            guard let v = Int64(exactly: n.doubleValue), v > 0 else { throw error("\"\(key)\" must be a positive id") }
            return .id(v)
        case let s as String where batchIndex != nil && s.hasPrefix("$"):
            guard let n = Int(s.dropFirst()), n >= 0, n < batchIndex! else {
                throw error("\"\(key)\": \(s) must name an earlier operation of the batch ($0 ... $\(batchIndex! - 1))")
            }
            return .result(n)
        case nil, is NSNull:
            throw error("\"\(key)\" is required")
        default:
            throw error("\"\(key)\" must be an interaction id")
        }
    }

    /// Refuses fields nobody asked for (a typo must not be silently ignored).
    func finish() throws {
        let unknown = Set(object.keys).subtracting(seen)
        if let first = unknown.sorted().first { throw error("unknown field \"\(first)\"") }
    }
}

func parseISOTime(_ text: String) -> Date? {
    let withFraction = ISO8601DateFormatter()
    withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = withFraction.date(from: text) { return d }
    let plain = ISO8601DateFormatter()
    plain.formatOptions = [.withInternetDateTime]
    return plain.date(from: text)
}

/// Parses a request body as a JSON object.
func jsonObject(_ body: [UInt8]) throws -> [String: Any] {
    guard !body.isEmpty else { throw APIError.badRequest("the body is empty: send a JSON object") }
    guard StrictJSON.isValid(body), let value = try? JSONSerialization.jsonObject(with: Data(body)) else {
        throw APIError.badRequest("the body is not valid JSON")
    }
    guard let object = value as? [String: Any] else { throw APIError.badRequest("the body must be a JSON object") }
    return object
}
