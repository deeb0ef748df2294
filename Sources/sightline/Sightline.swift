import ArgumentParser
import Foundation
import InteractionModel
import InteractionStore
import Logging

@main
struct Sightline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sightline",
        abstract: "Real-time supervisor dashboard backend for contact centers.",
        subcommands: [Serve.self, Migrate.self, Simulate.self, TokenCommand.self],
        defaultSubcommand: nil
    )
}

/// Options every command that talks to the database shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "PostgreSQL URL or libpq conninfo (default: $DATABASE_URL).")
    var database: String?

    @Option(name: .long, help: "Folder of the numbered SQL migrations (default: the project's sql/).")
    var migrations: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func resolvedDatabase() throws -> String {
        if let database, !database.isEmpty { return database }
        if let env = ProcessInfo.processInfo.environment["DATABASE_URL"], !env.isEmpty { return env }
        throw ValidationError("no database: pass --database URL or set DATABASE_URL (scripts/run starts a private one)")
    }

    func makeLogger(_ label: String) -> Logger {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }

    /// Connects and applies missing migrations.
    func connectAndMigrate(logger: Logger) throws -> InteractionStore {
        let url = try resolvedDatabase()
        let store = try InteractionStore(conninfo: url)
        let migrator = try Migrator(directory: migrations ?? (ProjectLayout.root() ?? FileManager.default.currentDirectoryPath) + "/sql")
        let applied = try migrator.migrate(store.connection)
        if !applied.isEmpty { logger.info("applied migrations \(applied.map(String.init).joined(separator: ", "))") }
        return store
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the SQL migrations that are missing (safe to run concurrently).")

    @OptionGroup var db: DatabaseOptions

    func run() throws {
        let logger = db.makeLogger("sightline.migrate")
        do {
            _ = try db.connectAndMigrate(logger: logger)
            logger.info("database is up to date")
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}
