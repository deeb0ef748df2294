import CLibWebSockets
import DequeModule

/// Bytes encoded once and shared by every connection they are sent to. Holds LWS_PRE bytes of
/// headroom so lws can write the frame header in front without a copy.
///
/// Sendable because it is immutable after `init`: the storage is written once, then only read.
public final class OutgoingMessage: @unchecked Sendable {
    let storage: UnsafeMutablePointer<UInt8>
    public let count: Int

    public convenience init(_ text: String) {
        self.init(bytes: Array(text.utf8))
    }

    public init(bytes: [UInt8]) {
        count = bytes.count
        storage = .allocate(capacity: Int(SIGHTLINE_LWS_PRE) + max(bytes.count, 1))
        bytes.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { (storage + Int(SIGHTLINE_LWS_PRE)).update(from: base, count: bytes.count) }
        }
    }

    /// The payload (after the headroom).
    var payload: UnsafeMutablePointer<UInt8> { storage + Int(SIGHTLINE_LWS_PRE) }

    /// The payload as text (tests, logs).
    public var text: String { String(decoding: UnsafeBufferPointer(start: payload, count: count), as: UTF8.self) }

    deinit {
        storage.deallocate()
    }
}

/// What waits to be written to one WebSocket connection: whole messages in order, the first one
/// possibly partly written. Push and pop are O(1); the bytes waiting are bounded by `byteLimit`
/// (a single message always fits behind at most a started one, so a large snapshot can be sent).
///
/// A value type without I/O: the server asks it for the next piece to write and tells it what
/// was written.
public struct OutgoingQueue {
    public enum Error: Swift.Error, Equatable {
        case limitTooSmall(Int)
    }

    public let byteLimit: Int
    private var messages = Deque<OutgoingMessage>()
    /// Bytes of the first message already written.
    public private(set) var offset = 0
    /// Bytes not yet written, of every queued message.
    public private(set) var queuedBytes = 0

    public init(byteLimit: Int) throws {
        guard byteLimit >= 1024 else { throw Error.limitTooSmall(byteLimit) }
        self.byteLimit = byteLimit
    }

    public var isEmpty: Bool { messages.isEmpty }
    public var count: Int { messages.count }

    /// Queues `message`; false (nothing queued) when it would go over the limit. One message
    /// always fits behind nothing but a message already started (a resynchronising snapshot
    /// must be sendable after the rest was dropped).
    public mutating func push(_ message: OutgoingMessage) -> Bool {
        let onlyStarted = messages.isEmpty || (messages.count == 1 && offset > 0)
        guard onlyStarted || queuedBytes + message.count <= byteLimit else { return false }
        messages.append(message)
        queuedBytes += message.count
        return true
    }

    /// The message being written and the bytes of it already written.
    public var head: (message: OutgoingMessage, offset: Int)? {
        messages.first.map { ($0, offset) }
    }

    /// Whole messages from the head, none started, each at most `maxMessageBytes`, while their
    /// sizes plus `overhead` each add up to at most `maxBytes` (empty when the head is started or
    /// larger).
    public func leadingWhole(maxBytes: Int, maxMessageBytes: Int, overhead: (Int) -> Int) -> [OutgoingMessage] {
        guard offset == 0 else { return [] }
        var out: [OutgoingMessage] = []
        var total = 0
        for m in messages {
            let size = m.count + overhead(m.count)
            guard m.count <= maxMessageBytes, total + size <= maxBytes else { break }
            out.append(m)
            total += size
        }
        return out
    }

    /// `n` more bytes of the head message were written.
    public mutating func wrote(_ n: Int) {
        guard let first = messages.first else { return }
        let n = min(n, first.count - offset)
        offset += n
        queuedBytes -= n
        if offset == first.count {
            messages.removeFirst()
            offset = 0
        }
    }

    /// Drops every message not yet started. A message already partly written stays: a WebSocket
    /// message cannot be cut short without breaking the stream.
    public mutating func discardUnstarted() {
        guard let first = messages.first else { return }
        if offset > 0 {
            messages = [first]
            queuedBytes = first.count - offset
        } else {
            messages.removeAll()
            queuedBytes = 0
        }
    }
}
