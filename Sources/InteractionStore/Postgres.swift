import CLibPQ
import Foundation

// Every libpq call of the project lives in this file. A `PostgresConnection` owns its `PGconn`
// (PQfinish in deinit, also after a failed connect); a `PostgresResult` owns its `PGresult`
// (PQclear in deinit). Queries are parameterised (PQexecParams, text format) only.

/// An error from PostgreSQL or libpq, with the SQLSTATE when the server sent one.
public struct PostgresError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke: retry later.
        case connection
        /// The server refused a statement; `sqlState` says why.
        case statement
    }

    public var kind: Kind
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?

    public var description: String {
        var text = message
        if let sqlState { text = "[\(sqlState)] " + text }
        if let detail, !detail.isEmpty { text += " (\(detail))" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        return text
    }
}

/// One result set, text format. Owns the `PGresult`.
public final class PostgresResult {
    private let handle: OpaquePointer

    fileprivate init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQclear(handle)
    }

    public var rowCount: Int { Int(PQntuples(handle)) }
    public var columnCount: Int { Int(PQnfields(handle)) }

    /// True for SQL NULL, and for a row or column out of range.
    public func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(handle, Int32(row), Int32(column)) == 1
    }

    /// The value's text; nil for NULL (or out of range).
    public func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        guard let raw = PQgetvalue(handle, Int32(row), Int32(column)) else { return nil }
        return String(cString: raw)
    }

    // The typed accessors below are nil for NULL and for text that does not parse as the type
    // (never a silent 0).

    public func int64(_ row: Int, _ column: Int) -> Int64? {
        string(row, column).flatMap { Int64($0) }
    }

    public func uint64(_ row: Int, _ column: Int) -> UInt64? {
        string(row, column).flatMap { UInt64($0) }
    }

    public func int(_ row: Int, _ column: Int) -> Int? {
        string(row, column).flatMap { Int($0) }
    }

    public func double(_ row: Int, _ column: Int) -> Double? {
        string(row, column).flatMap { Double($0) }
    }

    /// PostgreSQL's text form of a boolean: "t" or "f".
    public func bool(_ row: Int, _ column: Int) -> Bool? {
        switch string(row, column) {
        case "t": return true
        case "f": return false
        default: return nil
        }
    }
}

/// A notification received on a LISTEN channel.
public struct PostgresNotification: Sendable {
    public var channel: String
    public var payload: String
}

/// One connection. Not thread-safe: one owner thread at a time.
public final class PostgresConnection {
    private let handle: OpaquePointer

    /// Connects with a libpq connection string or URL (`postgresql://...` or `host=... port=...`).
    public init(_ conninfo: String) throws {
        guard let conn = PQconnectdb(conninfo) else {
            throw PostgresError(kind: .connection, message: "libpq could not allocate a connection")
        }
        if PQstatus(conn) != CONNECTION_OK {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(conn)
            throw PostgresError(kind: .connection, message: "cannot connect to PostgreSQL: \(message)",
                                hint: "check --database (or DATABASE_URL) and that the server is running")
        }
        handle = conn
        // Notices (e.g. "relation already exists, skipping") are not errors: keep them off stderr.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    deinit {
        PQfinish(handle)
    }

    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// True when the server sent something to this idle connection (nothing is waiting for an
    /// answer). An idle connection that does not LISTEN gets nothing but a notice or a goodbye:
    /// the "terminating connection" FATAL of a restart or `pg_terminate_backend`, then EOF.
    /// A connection for which this is true must be checked before it is trusted with a write.
    public var hasUnreadInput: Bool {
        let fd = PQsocket(handle)
        guard fd >= 0 else { return true }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) != 0
    }

    /// The socket, for polling (LISTEN). Owned by libpq: do not close it.
    public var socket: Int32 { PQsocket(handle) }

    /// Runs one statement with parameters ($1, $2, ...; nil is SQL NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> PostgresResult {
        let result = withCStrings(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        return try check(result)
    }

    /// Runs a script of statements without parameters (migrations).
    public func execute(script: String) throws {
        _ = try check(PQexec(handle, script))
    }

    /// Reads what arrived on the socket and returns the notifications received so far.
    public func notifications() throws -> [PostgresNotification] {
        if PQconsumeInput(handle) == 0 {
            throw PostgresError(kind: .connection, message: "connection to PostgreSQL lost: \(lastError)")
        }
        var received: [PostgresNotification] = []
        while let note = PQnotifies(handle) {
            received.append(PostgresNotification(channel: String(cString: note.pointee.relname),
                                                 payload: String(cString: note.pointee.extra)))
            PQfreemem(note)
        }
        return received
    }

    private var lastError: String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func check(_ result: OpaquePointer?) throws -> PostgresResult {
        guard let result else {
            throw PostgresError(kind: .connection, message: "PostgreSQL did not answer: \(lastError)")
        }
        let owned = PostgresResult(result)
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return owned
        default:
            func field(_ code: Int32) -> String? {
                guard let raw = PQresultErrorField(result, code) else { return nil }
                return String(cString: raw)
            }
            let sqlState = field(Int32(UInt8(ascii: "C")))  // PG_DIAG_SQLSTATE
            let message = field(Int32(UInt8(ascii: "M"))) ?? lastError  // PG_DIAG_MESSAGE_PRIMARY
            let brokenConnection = PQstatus(handle) != CONNECTION_OK
                || sqlState?.hasPrefix("08") == true || sqlState?.hasPrefix("57P") == true
            throw PostgresError(kind: brokenConnection ? .connection : .statement, sqlState: sqlState,
                                message: message, detail: field(Int32(UInt8(ascii: "D"))),
                                hint: field(Int32(UInt8(ascii: "H"))))
        }
    }
}

/// Hands `strings` to C as `const char * const *` for the duration of `body` only.
private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let owned: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { owned.forEach { free($0) } }
    return body(owned.map { $0.map { UnsafePointer($0) } })
}
