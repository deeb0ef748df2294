import AlertDelivery
import Foundation
import InteractionModel
import LWS

/// `GET /api/alerts` (firing alerts, `?queues=a,b` to filter) and
/// `GET /api/alerts/dead-letters` (deliveries given up after the last retry, newest first).
extension LiveService {
    func routeAlerts(_ request: HTTPRequest, rest: [String], principal: Principal) throws {
        guard request.method == "GET" || request.method == "HEAD" else {
            throw APIError(status: 405, code: "method_not_allowed", message: "\(request.path) takes GET, not \(request.method)")
        }
        let query = request.query
        switch rest.count {
        case 1:
            let filter: LiveState.Filter = principal.narrow(query["queues"].map { Set($0.split(separator: ",").map(String.init)) })
            server?.respond(request.id, .json(status: 200, "{\"alerts\":" + LiveState.alertsJSON(state.alerts.firing, filter: filter) + "}"))
        case 2 where rest[1] == "dead-letters":
            let limit = try query["limit"].map { text -> Int in
                guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit must be 1 to 1000") }
                return n
            } ?? 100
            database(request) { store in
                let letters = try Outbox(connection: store.connection).deadLetters(limit: limit)
                let items: [[String: Any]] = letters.map {
                    ["eventId": $0.eventID, "receiver": $0.receiver, "attempts": $0.attempts, "lastError": $0.lastError,
                     "deadAt": Timestamp.text($0.deadAt), "alert": AlertJSON.object($0.alert)]
                }
                let data = try JSONSerialization.data(withJSONObject: ["deadLetters": items], options: [.sortedKeys])
                return String(decoding: data, as: UTF8.self)
            }
        default:
            throw APIError(status: 404, code: "not_found", message: "no such path \(request.path)",
                           hint: "see /api/alerts and /api/alerts/dead-letters")
        }
    }
}
