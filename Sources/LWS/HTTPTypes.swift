/// The values that cross between the server and its delegate. All are `Sendable` values: they can
/// be handed to other threads (database workers) and back.

public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    let value: UInt64
    public var description: String { "req-\(value)" }
}

public struct ConnectionID: Hashable, Sendable, CustomStringConvertible, Comparable {
    let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var description: String { "ws-\(value)" }
    public static func < (a: ConnectionID, b: ConnectionID) -> Bool { a.value < b.value }
}

/// What is known of a request before its body is read.
public struct HTTPRequestHead: Sendable {
    public let method: String
    public let path: String
    public let query: QueryItems
    /// Lowercased names.
    public let headers: [String: String]
    /// The peer's address, for logs and limits.
    public let peer: String

    public init(method: String, path: String, query: QueryItems, headers: [String: String], peer: String = "") {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.peer = peer
    }
}

public struct HTTPRequest: Sendable {
    public let id: RequestID
    public let head: HTTPRequestHead
    public let body: [UInt8]

    public var method: String { head.method }
    public var path: String { head.path }
    public var query: QueryItems { head.query }
    public var headers: [String: String] { head.headers }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)] = []
    public var body: [UInt8]

    public init(status: Int, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public static func json(status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: Array(text.utf8))
    }

    public static func text(status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }

    /// `{"error":{"code":...,"message":...}}`, the one shape of every error the server answers.
    public static func error(status: Int, code: String, message: String, hint: String? = nil) -> HTTPResponse {
        var text = "{\"error\":{\"code\":" + jsonString(code) + ",\"message\":" + jsonString(message)
        if let hint { text += ",\"hint\":" + jsonString(hint) }
        return .json(status: status, text + "}}")
    }
}

public struct WebSocketUpgrade: Sendable {
    public let path: String
    public let query: QueryItems
    public let headers: [String: String]
    /// The peer's address.
    public let peer: String
}

/// A JSON string literal (quotes, backslashes and control characters escaped).
public func jsonString(_ s: String) -> String {
    var out = "\""
    out.reserveCapacity(s.utf8.count + 2)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
