import ArgumentParser
import Dispatch
import Foundation
import InteractionModel
import InteractionStore
import LWS
import LiveServer
import Logging
import Simulation

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the live dashboard: HTTP API, WebSocket stream at /live and the pages of web/.")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "Folder of the dashboard pages (default: the project's web/).")
    var web: String?

    @Option(name: .customLong("bootstrap-token-file"),
            help: "A file holding an admin token that is not stored (to create the first tokens over the API; also $SIGHTLINE_BOOTSTRAP_TOKEN). Tokens never go on the command line.")
    var bootstrapTokenFile: String?

    @Option(name: .customLong("allowed-origin"), help: "A page Origin allowed to open the WebSocket and to write (repeatable). Default: the server's own host.")
    var allowedOrigins: [String] = []

    @Option(help: "Write operations a second each token may send (a batch counts its operations); beyond: 429 with Retry-After.")
    var ingestRate: Double = 200

    @Option(help: "Write operations a token may send at once before --ingest-rate applies.")
    var ingestBurst: Double = 400

    @Option(help: "WebSocket connections one client address may hold open (loopback addresses are not limited); beyond: 429.")
    var maxConnectionsPerAddress: Int = 256

    @Option(name: .customLong("allowed-host"), help: "A host name clients may use in the Host header (repeatable; '*': any). Default: the listen address, localhost, 127.0.0.1, ::1 and this machine's name.")
    var allowedHosts: [String] = []

    @Flag(help: "Compress WebSocket messages (permessage-deflate; about 88 KB of memory per client).")
    var deflate = false

    @Option(help: "Deltas kept in memory for clients that resume.")
    var resumeCapacity: Int = 100_000

    @Option(help: "Bytes that may wait for one WebSocket client before it is resynchronised.")
    var clientBuffer: Int = 4 << 20

    @Option(help: "Database connections for the HTTP API.")
    var databaseWorkers: Int = 2

    @Option(help: "Seconds a database statement of the HTTP API may run before PostgreSQL cancels it and the request gets 503 (a costly figures range cannot hold the API's workers).")
    var apiStatementTimeoutSeconds: Double = 10

    @Option(help: "Seconds between heartbeats to dashboard clients.")
    var heartbeatSeconds: Double = 5

    @Option(help: "Fan-out tick in milliseconds: under load each client gets at most one frame of deltas per tick; when idle a delta goes out at once.")
    var batchMs: Int = 10

    @Option(help: "Seconds a request body may take to arrive after its headers; slower connections are closed.")
    var bodyTimeoutSeconds: Int = 10

    @Option(help: "TLS certificate (PEM); with --tls-key serves https and wss.")
    var tlsCert: String?

    @Option(help: "TLS private key (PEM).")
    var tlsKey: String?

    @Option(help: "Alert rules and receivers (a JSON file; README, \"Alerts\"). Default: the built-in rules on every queue, no receivers.")
    var alerts: String?

    @Flag(help: "Also run the traffic simulator against the database.")
    var simulate = false

    @Option(help: "Simulated calls per second (with --simulate).")
    var simRate: Double = 0.5

    @Option(help: "Simulated agents (with --simulate).")
    var simAgents: Int = 16

    @Option(help: "How much faster than real time simulated calls run (with --simulate).")
    var simSpeed: Double = 4

    @Option(help: "Seed of the simulator (with --simulate).")
    var seed: UInt64 = 1

    func validate() throws {
        guard parseListen() != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080") }
        guard resumeCapacity >= 100 else { throw ValidationError("--resume-capacity must be at least 100") }
        guard clientBuffer >= 64 << 10 else { throw ValidationError("--client-buffer must be at least 65536") }
        guard apiStatementTimeoutSeconds >= 0.001, apiStatementTimeoutSeconds <= 86_400 else {
            throw ValidationError("--api-statement-timeout-seconds must be 0.001 to 86400")
        }
        guard (1...32).contains(databaseWorkers) else { throw ValidationError("--database-workers must be 1 to 32") }
        guard (0.05...3600).contains(heartbeatSeconds) else { throw ValidationError("--heartbeat-seconds must be 0.05 to 3600") }
        guard (1...1000).contains(batchMs) else { throw ValidationError("--batch-ms must be 1 to 1000") }
        guard (1...600).contains(bodyTimeoutSeconds) else { throw ValidationError("--body-timeout-seconds must be 1 to 600") }
        guard maxConnectionsPerAddress >= 1 else { throw ValidationError("--max-connections-per-address must be at least 1") }
        guard ingestRate > 0, ingestRate.isFinite, ingestBurst >= 1, ingestBurst.isFinite else {
            throw ValidationError("--ingest-rate must be above 0 and --ingest-burst at least 1")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func parseListen() -> (String, Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (host, port)
    }

    func run() throws {
        let logger = db.makeLogger("sightline")
        do {
            let url = try resolveDatabase(logger: logger)
            var options = db
            options.database = url
            _ = try options.connectAndMigrate(logger: logger)

            var config = LiveService.Configuration()
            config.bootstrapTokenHash = try bootstrapToken().map(TokenSecret.hashHex)
            config.ingestRate = ingestRate
            config.ingestBurst = ingestBurst
            config.resumeCapacity = resumeCapacity
            config.databaseWorkers = databaseWorkers
            config.apiStatementTimeoutSeconds = apiStatementTimeoutSeconds
            config.heartbeatSeconds = heartbeatSeconds
            config.batchMilliseconds = batchMs
            if let alerts { config.alerts = try loadAlerts(alerts) }
            config.boardURL = "\(tlsCert == nil ? "http" : "https")://\(parseListen()!.0):\(parseListen()!.1)/"
            let root = ProjectLayout.root()
            if let root, let doc = try? String(contentsOfFile: root + "/docs/openapi.json", encoding: .utf8) {
                config.openAPIDocument = doc
            }
            let service = try LiveService(conninfo: url, configuration: config, logger: logger)

            let (host, port) = parseListen()!
            var lws = LWSConfiguration()
            lws.host = host
            lws.port = port
            lws.staticRoot = web ?? root.map { $0 + "/web" }
            lws.staticAliases = ["/wallboard": "wallboard.html"]
            lws.permessageDeflate = deflate
            lws.maxOutgoingBytesPerConnection = clientBuffer
            lws.allowedOrigins = allowedOrigins.isEmpty ? nil : allowedOrigins
            lws.allowedHosts = hostNames(listenHost: host)
            lws.maxConnectionsPerAddress = maxConnectionsPerAddress
            logger.info("answering to the host names \(lws.allowedHosts.map { $0.joined(separator: ", ") } ?? "(any)"); add others with --allowed-host")
            lws.tlsCertificatePath = tlsCert
            lws.tlsPrivateKeyPath = tlsKey
            lws.bodyTimeoutSeconds = bodyTimeoutSeconds
            let server = try LWSServer(configuration: lws, logger: logger)
            service.attach(to: server)

            if simulate {
                startSimulator(url: url, logger: logger)
            }
            server.stopOnSignals()
            let scheme = tlsCert == nil ? "http" : "https"
            try server.run(listening: {
                logger.notice("serving \(scheme)://\(host):\(port)/ (wallboard: \(scheme)://\(host):\(port)/wallboard)")
            }, beforeDestroy: {
                service.shutdown()
            })
            logger.notice("stopped")
        } catch let error as ExitCode {
            throw error
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }

    private func loadAlerts(_ path: String) throws -> AlertConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--alerts \(path): cannot read the file")
        }
        do {
            return try AlertConfiguration.parse(data)
        } catch {
            throw ValidationError("--alerts \(path): \(error)")
        }
    }

    /// The bootstrap token, from $SIGHTLINE_BOOTSTRAP_TOKEN or --bootstrap-token-file (trimmed).
    private func bootstrapToken() throws -> String? {
        var text: String?
        if let path = bootstrapTokenFile {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read --bootstrap-token-file \(path)")
            }
            text = contents
        } else if let env = ProcessInfo.processInfo.environment["SIGHTLINE_BOOTSTRAP_TOKEN"] {
            text = env
        }
        guard let token = text?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        guard token.utf8.count >= 16 else {
            throw ValidationError("the bootstrap token must be at least 16 characters (sightline token generate makes one)")
        }
        return token
    }

    /// The names the Host header may carry (nil: any).
    private func hostNames(listenHost: String) -> [String]? {
        if allowedHosts.contains("*") { return nil }
        var names = ["localhost", "127.0.0.1", "::1"]
        if !["0.0.0.0", "::", ""].contains(listenHost) { names.append(listenHost.lowercased()) }
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).lowercased()
            if !name.isEmpty { names.append(name) }
        }
        names += allowedHosts.map { $0.lowercased() }
        return Array(Set(names)).sorted()
    }

    private func resolveDatabase(logger: Logger) throws -> String {
        if let url = try? db.resolvedDatabase() { return url }
        guard let root = ProjectLayout.root() else {
            throw ValidationError("no database: pass --database URL or set DATABASE_URL")
        }
        return try ProjectLayout.startPrivateDatabase(root: root, logger: logger)
    }

    private func startSimulator(url: String, logger: Logger) {
        var options = TrafficSimulator.Options()
        options.arrivalsPerSecond = simRate
        options.agents = simAgents
        options.speed = simSpeed
        options.seed = seed
        options.callPrefix = "sim-\(Int(Date().timeIntervalSince1970))"
        let simLogger = logger
        let settings = options
        let thread = Thread {
            var backoff = 1.0
            while true {
                do {
                    let store = try InteractionStore(conninfo: url)
                    let simulator = TrafficSimulator(store: store, options: settings)
                    try simulator.setUp()
                    if simulator.counters.endedLeftovers > 0 {
                        simLogger.notice("simulator: ended \(simulator.counters.endedLeftovers) interactions an earlier run left live")
                    }
                    simLogger.info("simulator: \(settings.arrivalsPerSecond) calls/s, \(settings.agents) agents, \(settings.speed)x")
                    backoff = 1
                    simulator.run(seconds: nil) { _, _ in }
                } catch {
                    simLogger.warning("simulator stopped: \(error); restarting in \(Int(backoff)) s")
                    Thread.sleep(forTimeInterval: backoff)
                    backoff = min(backoff * 2, 30)
                }
            }
        }
        thread.name = "sightline-simulator"
        thread.start()
    }
}

/// Where the project's files are, and its private PostgreSQL.
enum ProjectLayout {
    /// The folder holding sql/001_schema.sql: the working directory or above the executable.
    static func root() -> String? {
        var candidates = [FileManager.default.currentDirectoryPath]
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/sql/001_schema.sql") }
    }

    /// Starts (creating on first use) the private cluster under var/pg with scripts/pg and
    /// returns its URL.
    static func startPrivateDatabase(root: String, logger: Logger) throws -> String {
        var dirs = [root + "/var/pg"]
        let stable = root.utf8.reduce(UInt32(5381)) { ($0 &* 33) &+ UInt32($1) }
        dirs.append("/var/tmp/sightline-pg-\(getuid())-\(stable % 1_000_000)")
        for dir in dirs {
            let (status, url, message) = runScript(root + "/scripts/pg", ["start", dir])
            if status == 0, !url.isEmpty {
                logger.notice("private PostgreSQL in \(dir) at \(url) (stop it with: scripts/pg stop \(dir))")
                return url
            }
            logger.warning("could not start a private PostgreSQL in \(dir): \(message)")
        }
        throw ValidationError("no database: pass --database URL, or fix the errors above for the private one")
    }
}

/// Runs a script and returns its exit status, standard output and standard error (trimmed).
/// (posix_spawn and waitpid: Foundation's Process can miss the exit of a child that leaves a
/// daemon behind.)
func runScript(_ path: String, _ arguments: [String]) -> (Int32, String, String) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-\(getpid())-out").path
    let err = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-\(getpid())-err").path
    defer {
        unlink(out)
        unlink(err)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else {
        return (-1, "", "cannot run \(path)")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0, errno == EINTR {}
    let read = { (file: String) in
        (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }
    let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    return (exited, read(out), read(err))
}
