import Foundation
import InteractionModel

/// The periods the live figures count: the current 15-minute interval and day in the contact
/// center's time zone (`sightline.current_periods`).
public struct FigurePeriods: Sendable, Equatable {
    public var timeZone: String
    public var intervalStart: Date
    public var intervalEnd: Date
    public var dayStart: Date
    public var dayEnd: Date
    /// The database time they were read at.
    public var asOf: Date

    public init(timeZone: String, intervalStart: Date, intervalEnd: Date, dayStart: Date, dayEnd: Date, asOf: Date) {
        self.timeZone = timeZone
        self.intervalStart = intervalStart
        self.intervalEnd = intervalEnd
        self.dayStart = dayStart
        self.dayEnd = dayEnd
        self.asOf = asOf
    }
}

/// The live figures as PostgreSQL computed them (`sightline.live_figures`): per queue and per
/// person agent, its wire entry as JSON text, passed on untouched (SQL is their only author).
public struct LiveFigures: Sendable, Equatable {
    public var periods: FigurePeriods
    public var queues: [String: String]
    public var agents: [String: String]

    public init(periods: FigurePeriods, queues: [String: String], agents: [String: String]) {
        self.periods = periods
        self.queues = queues
        self.agents = agents
    }
}

/// One period's figures of one queue or agent (`sightline.figures`), JSON text.
public struct FigureRow: Sendable, Equatable {
    public enum Scope: String, Sendable { case queue, agent }
    public var scope: Scope
    public var id: String
    public var start: Date
    public var end: Date
    public var json: String
}

/// Figures of periods as `InteractionStore.figures` reads them.
public struct FigureHistory: Sendable, Equatable {
    public var timeZone: String
    public var asOf: Date
    public var rows: [FigureRow]
}

public enum FigureGranularity: String, Sendable, CaseIterable {
    case interval
    case day
}

extension InteractionStore {
    /// The figures of the current interval and day, as of one database time.
    public func liveFigures() throws -> LiveFigures {
        let p = try run {
            try connection.query("""
                select time_zone, \(sqlMicros("interval_start")), \(sqlMicros("interval_end")), \(sqlMicros("day_start")),
                       \(sqlMicros("day_end")), \(sqlMicros("as_of")), as_of::text from sightline.current_periods()
                """)
        }
        let (periods, asOfText) = try p.single("sightline.current_periods") { row in
            (FigurePeriods(timeZone: try row.value(0, "time_zone", .text), intervalStart: try row.value(1, "interval_start", .time),
                           intervalEnd: try row.value(2, "interval_end", .time), dayStart: try row.value(3, "day_start", .time),
                           dayEnd: try row.value(4, "day_end", .time), asOf: try row.value(5, "as_of", .time)),
             try row.value(6, "as_of", .text))
        }
        let r = try run { try connection.query("select scope, id, entry from sightline.live_figures($1::timestamptz)", [asOfText]) }
        var queues: [String: String] = [:]
        var agents: [String: String] = [:]
        for (scope, id, entry) in try r.rows("sightline.live_figures", { row in
            (try row.value(0, "scope", .text), try row.value(1, "id", .text), try row.value(2, "entry", .text))
        }) {
            if scope == "queue" { queues[id] = entry } else { agents[id] = entry }
        }
        return LiveFigures(periods: periods, queues: queues, agents: agents)
    }

    /// The figures of every period of [from, to) (widened to whole periods; from defaults to the
    /// start of today in the contact center's time zone, to to now), for the queues and agents
    /// named (nil: all), oldest first. Refused (`.badArgument`) beyond 7 days of intervals or 92
    /// days.
    public func figures(from: Date?, to: Date?, granularity: FigureGranularity, queues: [String]? = nil,
                        agents: [String]? = nil) throws -> FigureHistory {
        let p = try run {
            try connection.query("""
                select time_zone, \(sqlMicros("day_start")), \(sqlMicros("as_of")) from sightline.current_periods()
                """)
        }
        let (zone, dayStart, asOf) = try p.single("sightline.current_periods") { row in
            (try row.value(0, "time_zone", .text), try row.value(1, "day_start", .time), try row.value(2, "as_of", .time))
        }
        let r = try run {
            try connection.query("""
                select scope, id, \(sqlMicros("period_start")), \(sqlMicros("period_end")), figures::text
                  from sightline.figures($1, $2, $3, $4, $5) order by scope desc, id, period_start
                """, [sqlTime(from ?? dayStart), sqlTime(to ?? asOf.addingTimeInterval(0.000_001)), granularity.rawValue,
                      queues.map(pgArray), agents.map(pgArray)])
        }
        let rows = try r.rows("sightline.figures") { row in
            let scopeText = try row.value(0, "scope", .text)
            guard let scope = FigureRow.Scope(rawValue: scopeText) else {
                throw ColumnError(description: "scope is '\(scopeText.prefix(40))', not queue or agent")
            }
            return FigureRow(scope: scope, id: try row.value(1, "id", .text), start: try row.value(2, "period_start", .time),
                             end: try row.value(3, "period_end", .time), json: try row.value(4, "figures", .text))
        }
        return FigureHistory(timeZone: zone, asOf: asOf, rows: rows)
    }

    /// Sets the contact center's time zone (a name of `pg_timezone_names`; refused: `.badArgument`).
    public func setTimeZone(_ zone: String) throws {
        try run { try connection.query("select sightline.set_time_zone($1)", [zone]) }
    }
}
