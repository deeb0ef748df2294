import Foundation

/// Applies the numbered migrations of `sql/` (`NNN_name.sql`) once each, in order, recording
/// them in `sightline_migrations`. Safe when several processes run it at once: they queue on
/// an advisory lock and each file runs in its own transaction.
public struct Migrator {
    public struct Migration: Sendable, Equatable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    public enum Error: Swift.Error, CustomStringConvertible {
        case directoryNotFound(String)
        case badFileName(String)
        case failed(version: Int, name: String, PostgresError)

        public var description: String {
            switch self {
            case .directoryNotFound(let path):
                return "migrations folder \(path) not found: pass --migrations DIR (the project's sql/ folder)"
            case .badFileName(let name):
                return "migration file \(name) is not named NNN_name.sql"
            case .failed(let version, let name, let error):
                return "migration \(version) (\(name)) failed and was rolled back: \(error)"
            }
        }
    }

    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Reads `NNN_*.sql` files from a folder.
    public init(directory: String) throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw Error.directoryNotFound(directory)
        }
        var found: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            guard let version = Int(name.prefix { $0.isNumber }), name.first?.isNumber == true else {
                throw Error.badFileName(name)
            }
            let sql = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            found.append(Migration(version: version, name: name, sql: sql))
        }
        self.init(migrations: found)
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate(_ connection: PostgresConnection) throws -> [Int] {
        // Any constant shared by all Sightline migrators.
        let lockKey = "7308215346212851"
        try connection.query("select pg_advisory_lock($1)", [lockKey])
        defer { _ = try? connection.query("select pg_advisory_unlock($1)", [lockKey]) }
        try connection.query("""
            create table if not exists public.sightline_migrations (
                version integer primary key, name text not null, applied_at timestamptz not null default now())
            """)
        let done = try connection.query("select version from public.sightline_migrations")
        let applied = Set((0..<done.rowCount).compactMap { done.int(0 + $0, 0) })
        var now: [Int] = []
        for m in migrations where !applied.contains(m.version) {
            do {
                try connection.execute(script: "begin;\n" + m.sql + "\n;insert into public.sightline_migrations (version, name) values (\(m.version), '\(m.name.replacingOccurrences(of: "'", with: "''"))');\ncommit;")
            } catch let error as PostgresError {
                _ = try? connection.query("rollback")
                throw Error.failed(version: m.version, name: m.name, error)
            }
            now.append(m.version)
        }
        return now
    }
}
