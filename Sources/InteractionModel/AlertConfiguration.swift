import Foundation

/// The alert configuration file given to `sightline serve --alerts FILE` (JSON; README,
/// "Alerts" documents every field). Parsing is strict: an unknown key, a wrong type or a value
/// out of range is an error naming its place in the file, so a typo never silently disables a rule.
public struct AlertConfiguration: Sendable, Equatable {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var path: String
        public var message: String
        public var description: String { "alert configuration: \(path.isEmpty ? "" : path + ": ")\(message)" }
    }

    /// Where alerts go.
    public struct Receiver: Sendable, Equatable {
        public enum Kind: String, Sendable, Equatable { case alertmanager, webhook }

        public var name: String
        public var kind: Kind
        /// Alertmanager: its base URL (alerts go to `URL/api/v2/alerts`); webhook: the endpoint.
        public var url: String
        /// Webhook signing secrets (`whsec_` + base64). Several during a key rotation: each
        /// signs, and the receiver accepts any one it knows.
        public var secrets: [String]
        /// Seconds between attempts after a failure (the Standard Webhooks schedule by default);
        /// after the last one the event is dead-lettered.
        public var retrySeconds: [Double]
        public var timeoutSeconds: Double

        /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the schedule the Standard Webhooks
        /// specification suggests).
        public static let standardRetrySeconds: [Double] = [5, 300, 1800, 7200, 18000, 36000, 36000]

        public init(name: String, kind: Kind, url: String, secrets: [String] = [],
                    retrySeconds: [Double] = Receiver.standardRetrySeconds, timeoutSeconds: Double = 5) {
            self.name = name
            self.kind = kind
            self.url = url
            self.secrets = secrets
            self.retrySeconds = retrySeconds
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// Seconds between evaluations of every rule (at most 1).
    public var evaluationSeconds: Double = 1
    /// Seconds between re-sending every active alert to Alertmanager (at most 60).
    public var resendSeconds: Double = 60
    /// Days a settled alert decision (and its deliveries, dead letters included) stays in the
    /// outbox (default 30; sql/022_alert_outbox_retention.sql).
    public var retentionDays: Double = 30
    /// The board's address for `generatorURL` (default: the server's own).
    public var boardURL: String?
    public var defaults: [AlertRule: RuleOverride] = [:]
    public var queues: [String: [AlertRule: RuleOverride]] = [:]
    public var receivers: [Receiver] = []

    public init() {}

    /// How long Alertmanager keeps an alert it was sent: 4 x max(evaluation, resend), as
    /// Prometheus does, so the alerts of a server that died resolve by themselves.
    public var leaseSeconds: Double { 4 * max(evaluationSeconds, resendSeconds) }

    /// The settings in force for `rule` on `queue` (nil: the stream rule).
    public func settings(_ rule: AlertRule, queue: QueueConfig?) -> RuleSettings {
        let queueOverride = queue.flatMap { queues[$0.id]?[rule] }
        let merged = (queueOverride ?? RuleOverride()).over(defaults[rule])
        return RuleSettings.resolve(rule, queue: queue, override: merged)
    }

    // MARK: Parsing

    public static func parse(_ data: Data) throws -> AlertConfiguration {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw Error(path: "", message: "not valid JSON (\(error.localizedDescription))")
        }
        var config = AlertConfiguration()
        var top = try Reader(root, path: "")
        config.evaluationSeconds = try top.number("evaluationSeconds", in: 0.05...1) ?? 1
        config.resendSeconds = try top.number("resendSeconds", in: 0.05...60) ?? 60
        config.retentionDays = try top.number("retentionDays", in: 1...3650) ?? 30
        config.boardURL = try top.string("boardURL")
        if let url = config.boardURL, !Self.isHTTPURL(url) {
            throw Error(path: "boardURL", message: "must start with http:// or https://")
        }
        if let section = try top.object("defaults") {
            config.defaults = try rules(section, path: "defaults")
        }
        if let section = try top.object("queues") {
            for (queue, value) in section.sorted(by: { $0.key < $1.key }) {
                guard let rulesObject = value as? [String: Any] else {
                    throw Error(path: "queues.\(queue)", message: "must be an object of rules")
                }
                config.queues[queue] = try rules(rulesObject, path: "queues.\(queue)")
            }
        }
        if let list = try top.array("receivers") {
            for (index, value) in list.enumerated() {
                config.receivers.append(try receiver(value, path: "receivers[\(index)]"))
            }
            let names = config.receivers.map(\.name)
            if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
                throw Error(path: "receivers", message: "two receivers are named \"\(duplicate)\"; names must be unique")
            }
        }
        try top.finish()
        return config
    }

    private static func rules(_ object: [String: Any], path: String) throws -> [AlertRule: RuleOverride] {
        var out: [AlertRule: RuleOverride] = [:]
        for (name, value) in object.sorted(by: { $0.key < $1.key }) {
            guard let rule = AlertRule(rawValue: name) else {
                throw Error(path: "\(path).\(name)",
                            message: "unknown rule; rules are \(AlertRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var r = try Reader(value, path: "\(path).\(name)")
            let upper: Double = [.serviceLevel, .abandonRate].contains(rule) ? 100 : 86400
            var o = RuleOverride()
            o.enabled = try r.bool("enabled")
            o.threshold = try r.number("threshold", in: 0...upper)
            o.clear = try r.number("clear", in: 0...upper)
            o.forSeconds = try r.number("for", in: 0...86400)
            o.clearForSeconds = try r.number("clearFor", in: 0...86400)
            o.windowSeconds = try r.number("window", in: 1...86400)
            o.minOffered = try r.number("minOffered", in: 1...1_000_000).map { Int($0) }
            if let s = try r.string("severity") {
                guard let severity = AlertSeverity(rawValue: s) else {
                    throw Error(path: "\(path).\(name).severity", message: "must be \"warning\" or \"critical\"")
                }
                o.severity = severity
            }
            try r.finish()
            out[rule] = o
        }
        return out
    }

    private static func receiver(_ value: Any, path: String) throws -> Receiver {
        var r = try Reader(value, path: path)
        guard let name = try r.string("name"), !name.isEmpty, name.count <= 64,
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) })
        else { throw Error(path: "\(path).name", message: "required: 1 to 64 letters, digits, '-', '_' or '.'") }
        guard let kindText = try r.string("type"), let kind = Receiver.Kind(rawValue: kindText) else {
            throw Error(path: "\(path).type", message: "required: \"alertmanager\" or \"webhook\"")
        }
        guard let url = try r.string("url"), isHTTPURL(url) else {
            throw Error(path: "\(path).url", message: "required: an http:// or https:// URL")
        }
        var receiver = Receiver(name: name, kind: kind, url: url)
        receiver.secrets = try r.strings("secrets") ?? []
        for (i, secret) in receiver.secrets.enumerated() where Self.secretKey(secret) == nil {
            throw Error(path: "\(path).secrets[\(i)]", message: "must be whsec_ followed by base64 (at least 16 bytes)")
        }
        if kind == .webhook, receiver.secrets.isEmpty {
            throw Error(path: "\(path).secrets", message: "a webhook needs at least one signing secret (whsec_...)")
        }
        if kind == .alertmanager, !receiver.secrets.isEmpty {
            throw Error(path: "\(path).secrets", message: "Alertmanager receivers are not signed; remove secrets")
        }
        if let retries = try r.numbers("retrySeconds") {
            guard retries.allSatisfy({ (0...86400).contains($0) }) else {
                throw Error(path: "\(path).retrySeconds", message: "each must be 0 to 86400")
            }
            receiver.retrySeconds = retries
        }
        receiver.timeoutSeconds = try r.number("timeoutSeconds", in: 0.1...60) ?? 5
        try r.finish()
        return receiver
    }

    static func isHTTPURL(_ text: String) -> Bool {
        (text.hasPrefix("http://") || text.hasPrefix("https://")) && text.count > 8
            && !text.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7f }
    }

    /// The key bytes of a `whsec_` secret; nil when it is not one.
    public static func secretKey(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix("whsec_"), let data = Data(base64Encoded: String(secret.dropFirst(6))),
              data.count >= 16 else { return nil }
        return Array(data)
    }

    /// Reads the keys of one JSON object and refuses the ones nobody read.
    private struct Reader {
        let object: [String: Any]
        let path: String
        var seen = Set<String>()

        init(_ value: Any, path: String) throws {
            guard let object = value as? [String: Any] else {
                throw Error(path: path, message: "must be an object")
            }
            self.object = object
            self.path = path
        }

        private func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        private mutating func value(_ key: String) -> Any? {
            seen.insert(key)
            guard let v = object[key], !(v is NSNull) else { return nil }
            return v
        }

        mutating func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
            guard let v = value(key) else { return nil }
            guard let n = v as? NSNumber, !isJSONBool(n), range.contains(n.doubleValue) else {
                throw Error(path: at(key), message: "must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n.doubleValue
        }

        mutating func bool(_ key: String) throws -> Bool? {
            guard let v = value(key) else { return nil }
            guard let n = v as? NSNumber, isJSONBool(n) else {
                throw Error(path: at(key), message: "must be true or false")
            }
            return n.boolValue
        }

        mutating func string(_ key: String) throws -> String? {
            guard let v = value(key) else { return nil }
            guard let s = v as? String else { throw Error(path: at(key), message: "must be a string") }
            return s
        }

        mutating func strings(_ key: String) throws -> [String]? {
            guard let v = value(key) else { return nil }
            guard let list = v as? [Any], let strings = list as? [String] else {
                throw Error(path: at(key), message: "must be a list of strings")
            }
            return strings
        }

        mutating func numbers(_ key: String) throws -> [Double]? {
            guard let v = value(key) else { return nil }
            guard let list = v as? [Any], list.allSatisfy({ ($0 as? NSNumber).map { !isJSONBool($0) } ?? false })
            else { throw Error(path: at(key), message: "must be a list of numbers") }
            return list.map { ($0 as! NSNumber).doubleValue }
        }

        mutating func object(_ key: String) throws -> [String: Any]? {
            guard let v = value(key) else { return nil }
            guard let o = v as? [String: Any] else { throw Error(path: at(key), message: "must be an object") }
            return o
        }

        mutating func array(_ key: String) throws -> [Any]? {
            guard let v = value(key) else { return nil }
            guard let a = v as? [Any] else { throw Error(path: at(key), message: "must be a list") }
            return a
        }

        func finish() throws {
            if let unknown = object.keys.sorted().first(where: { !seen.contains($0) }) {
                throw Error(path: at(unknown), message: "unknown key")
            }
        }
    }
}
