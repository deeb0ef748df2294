import ArgumentParser
import Foundation
import InteractionStore
import LiveServer
import Logging

/// `sightline token create|list|revoke|generate`: access tokens, stored hashed (sql/030_tokens.sql).
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Manage access tokens: create (prints the secret once), list, revoke.",
        subcommands: [Create.self, List.self, Revoke.self, Generate.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token and print its secret (shown once: only its SHA-256 is stored).")

        @OptionGroup var db: DatabaseOptions

        @Option(help: "A name for the token (unique among active tokens), e.g. acd-1 or hallway-tv.")
        var name: String

        @Option(help: "ingest (writes), supervisor (reads), wallboard (queue figures only) or admin.")
        var role: String

        @Option(name: .customLong("queue"), help: "Limit a supervisor or wallboard token to this queue (repeatable). Default: every queue.")
        var queues: [String] = []

        @Option(help: "Expire after this long: 30m, 12h, 90d. Default: never.")
        var expiresIn: String?

        func run() throws {
            let logger = db.makeLogger("sightline.token")
            var expiresAt: Date?
            if let expiresIn {
                guard let seconds = parseDuration(expiresIn) else {
                    throw ValidationError("--expires-in must be a number with s, m, h or d, e.g. 90d")
                }
                expiresAt = Date(timeIntervalSinceNow: seconds)
            }
            try db.withStore(logger) { store in
                let secret = try TokenSecret.generate()
                try store.createToken(name: name, role: role, queues: queues.isEmpty ? nil : queues,
                                      expiresAt: expiresAt, hash: TokenSecret.hash(secret))
                print(secret)
                logger.info("token \(name) created (\(role)\(queues.isEmpty ? "" : " of " + queues.joined(separator: ", "))); the secret above is shown only now")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")

        @OptionGroup var db: DatabaseOptions

        @Flag(help: "Also list expired and revoked tokens.")
        var all = false

        func run() throws {
            let logger = db.makeLogger("sightline.token")
            try db.withStore(logger) { store in
                let format = ISO8601DateFormatter()
                print(["NAME", "ROLE", "QUEUES", "STATUS", "CREATED", "EXPIRES"].joined(separator: "\t"))
                for t in try store.tokens(activeOnly: !all) {
                    print([t.name, t.role, t.queues?.joined(separator: ",") ?? "*", t.status.rawValue,
                           format.string(from: t.createdAt), t.expiresAt.map(format.string) ?? "never"].joined(separator: "\t"))
                }
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token: it is refused at once, and its open streams close within seconds.")

        @OptionGroup var db: DatabaseOptions

        @Option(help: "The name of the active token to revoke.")
        var name: String

        func run() throws {
            let logger = db.makeLogger("sightline.token")
            try db.withStore(logger) { store in
                try store.revokeToken(name: name)
                logger.info("token \(name) revoked")
            }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new random secret, stored nowhere (e.g. for $SIGHTLINE_BOOTSTRAP_TOKEN).")

        func run() throws {
            print(try TokenSecret.generate())
        }
    }
}

extension DatabaseOptions {
    /// Runs `body` with a migrated store; an error is logged and exits with status 1.
    func withStore(_ logger: Logger, _ body: (InteractionStore) throws -> Void) throws {
        do {
            try body(try connectAndMigrate(logger: logger))
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}

/// "90d", "12h", "30m", "45s" in seconds.
func parseDuration(_ text: String) -> TimeInterval? {
    guard let unit = text.last, let n = Double(text.dropLast()), n > 0, n.isFinite else { return nil }
    switch unit {
    case "s": return n
    case "m": return n * 60
    case "h": return n * 3600
    case "d": return n * 86400
    default: return nil
    }
}
