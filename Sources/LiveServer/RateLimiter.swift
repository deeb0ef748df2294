import Foundation

/// Writes per token: a token bucket per key that refills at `rate` operations a second up to
/// `burst`. A value: `take` decides, the caller keeps it (the executor, on the loop thread).
struct RateLimiter: Sendable {
    struct Bucket: Sendable {
        var tokens: Double
        var updated: Date
    }

    let rate: Double
    let burst: Double
    private(set) var buckets: [String: Bucket] = [:]

    init(rate: Double, burst: Double) {
        self.rate = max(rate, 0.001)
        self.burst = max(burst, 1)
    }

    /// Takes `cost` operations (at most a full bucket) for `key`: nil when allowed, else the
    /// seconds until that many are available again (nothing is taken then).
    mutating func take(_ key: String, cost: Int = 1, now: Date) -> TimeInterval? {
        let need = min(Double(max(cost, 1)), burst)
        var b = buckets[key] ?? Bucket(tokens: burst, updated: now)
        b.tokens = min(burst, b.tokens + max(0, now.timeIntervalSince(b.updated)) * rate)
        b.updated = now
        defer {
            buckets[key] = b
            if buckets.count > 10_000 { forgetFull(now: now) }
        }
        guard b.tokens >= need else { return (need - b.tokens) / rate }
        b.tokens -= need
        return nil
    }

    /// Drops buckets that have refilled (they equal a new one).
    private mutating func forgetFull(now: Date) {
        buckets = buckets.filter { $0.value.tokens + now.timeIntervalSince($0.value.updated) * rate < burst }
    }
}
