import Foundation
import InteractionModel

extension InteractionStore {
    /// Per queue, the figures of the last `seconds` (whole 15-minute intervals) the alert rules
    /// judge, as `sightline.alert_window_figures` computes them.
    public func alertWindowFigures(seconds: Double) throws -> [String: WindowFigures] {
        let r = try run {
            try connection.query("""
                select queue_id, offered, service_level_percent, abandon_percent
                  from sightline.alert_window_figures($1::float8)
                """, [String(seconds)])
        }
        let rows = try r.rows("sightline.alert_window_figures") { row in
            (try row.value(0, "queue_id", .text),
             WindowFigures(offered: try row.value(1, "offered", .int),
                           serviceLevelPercent: try row.optional(2, "service_level_percent", .seconds),
                           abandonPercent: try row.optional(3, "abandon_percent", .seconds)))
        }
        return Dictionary(rows, uniquingKeysWith: { a, _ in a })
    }
}
