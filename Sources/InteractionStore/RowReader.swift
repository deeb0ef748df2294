import Foundation
import InteractionModel

/// A column that is NULL where a value must be, or whose text does not parse. Readers turn it
/// into `StoreError.unexpectedRow` (or, in the log, an unreadable row): never a crash.
struct ColumnError: Error, CustomStringConvertible {
    var description: String
}

/// How the text of one column becomes a value.
struct ColumnType<Value> {
    /// For messages: "'x' is not <kind>".
    var kind: String
    var parse: (String) -> Value?
}

extension ColumnType where Value == String {
    static var text: Self { Self(kind: "text") { $0 } }
}

extension ColumnType where Value == Int64 {
    static var int64: Self { Self(kind: "a 64-bit integer") { Int64($0) } }
}

extension ColumnType where Value == UInt64 {
    static var uint64: Self { Self(kind: "an unsigned 64-bit integer") { UInt64($0) } }
}

extension ColumnType where Value == Int {
    static var int: Self { Self(kind: "an integer") { Int($0) } }
}

extension ColumnType where Value == Double {
    static var seconds: Self { Self(kind: "a finite number") { Double($0).flatMap { $0.isFinite ? $0 : nil } } }
}

extension ColumnType where Value == Bool {
    static var bool: Self { Self(kind: "a boolean") { $0 == "t" ? true : $0 == "f" ? false : nil } }
}

extension ColumnType where Value == InteractionState {
    static var state: Self { Self(kind: "an interaction state") { InteractionState(rawValue: $0) } }
}

extension ColumnType where Value == TransferKind {
    static var transferKind: Self { Self(kind: "a transfer kind") { TransferKind(rawValue: $0) } }
}

extension ColumnType where Value == Date {
    /// Microseconds since 1970 as `sqlMicros` selects them. A time that is not finite arrives as
    /// "Infinity" / "-Infinity" and one beyond 64 bits as a long number: neither parses.
    static var time: Self {
        Self(kind: "a finite time") { Int64($0).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) } }
    }
}

/// The SQL that selects a timestamptz column as microseconds since 1970, in text. Numeric
/// arithmetic: it cannot fail for any stored value (infinity becomes "Infinity"), unlike a cast
/// to bigint, which would fail the whole query for one row.
func sqlMicros(_ column: String) -> String {
    "trunc(extract(epoch from \(column)) * 1000000)::text"
}

/// One row of a result, read column by column.
struct RowReader {
    let result: PostgresResult
    let row: Int

    init(_ result: PostgresResult, _ row: Int) {
        self.result = result
        self.row = row
    }

    /// The value of a column that may be NULL.
    func optional<Value>(_ column: Int, _ name: String, _ type: ColumnType<Value>) throws -> Value? {
        guard let text = result.string(row, column) else { return nil }
        guard let value = type.parse(text) else {
            throw ColumnError(description: "\(name) is '\(text.prefix(80))', not \(type.kind)")
        }
        return value
    }

    /// The value of a column that must not be NULL.
    func value<Value>(_ column: Int, _ name: String, _ type: ColumnType<Value>) throws -> Value {
        guard let value = try optional(column, name, type) else {
            throw ColumnError(description: "\(name) is NULL")
        }
        return value
    }

    /// The twelve columns of `statisticsColumns`, from `first` on.
    func statistics(from first: Int) throws -> InteractionStatistics {
        InteractionStatistics(
            waitSeconds: try optional(first, "wait_seconds", .seconds),
            talkSeconds: try value(first + 1, "talk_seconds", .seconds),
            holdSeconds: try value(first + 2, "hold_seconds", .seconds),
            holdCount: try value(first + 3, "hold_count", .int),
            afterCallWorkSeconds: try value(first + 4, "after_call_work_seconds", .seconds),
            answered: try value(first + 5, "answered", .bool),
            answeredWithinServiceLevel: try optional(first + 6, "answered_within_service_level", .bool),
            abandoned: try value(first + 7, "abandoned", .bool),
            abandonedFrom: try optional(first + 8, "abandoned_from", .state),
            shortAbandon: try value(first + 9, "short_abandon", .bool),
            transferred: try value(first + 10, "transferred", .bool),
            failedTransferLeg: try value(first + 11, "failed_transfer_leg", .bool))
    }
}

/// The columns `RowReader.statistics(from:)` reads, of `sightline.interaction_history` as `alias`.
func statisticsColumns(_ alias: String) -> String {
    ["wait_seconds", "talk_seconds", "hold_seconds", "hold_count", "after_call_work_seconds", "answered",
     "answered_within_service_level", "abandoned", "abandoned_from::text", "short_abandon", "transferred",
     "failed_transfer_leg"].map { "\(alias).\($0)" }.joined(separator: ", ")
}

extension PostgresResult {
    /// Reads every row with `body`; a `ColumnError` becomes `StoreError.unexpectedRow` naming
    /// `what` and the row.
    func rows<R>(_ what: String, _ body: (RowReader) throws -> R) throws -> [R] {
        try (0..<rowCount).map { i in
            do {
                return try body(RowReader(self, i))
            } catch let error as ColumnError {
                throw StoreError.unexpectedRow("\(what), row \(i + 1): \(error)")
            }
        }
    }

    /// The one row a statement must return, read with `body`.
    func single<R>(_ what: String, _ body: (RowReader) throws -> R) throws -> R {
        guard rowCount == 1 else {
            throw StoreError.unexpectedRow("\(what): \(rowCount) rows where one was expected")
        }
        return try rows(what, body)[0]
    }
}
