/// Decodes a request body sent with `Transfer-Encoding: chunked` (RFC 9112 §7.1) as its bytes
/// arrive, within fixed bounds. libwebsockets hands a chunked request body to the server
/// undecoded and never signals its end, so the framing is read here: chunk-size lines (with
/// optional extensions), chunk data, the CRLF after each chunk, the last (0-size) chunk and an
/// optional trailer section ending in an empty line. A pure value: no I/O.
public struct ChunkedDecoder: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        /// The framing is not chunked encoding; the message says where it went wrong.
        case malformed(String)
        /// The decoded body would exceed `maxBodyBytes`.
        case tooLarge
    }

    public enum Progress: Equatable, Sendable {
        case needMore
        /// The last chunk and the trailer section have arrived; `unused` bytes of the last
        /// input follow the body (a pipelined request, not read here).
        case complete(unused: Int)
    }

    private enum State: Equatable, Sendable {
        case sizeLine, data(remaining: Int), dataEnd(sawCR: Bool), trailerLine, done
    }

    public let maxBodyBytes: Int
    /// The longest chunk-size line or trailer line accepted (without its CRLF).
    public let maxLineBytes: Int
    /// The most trailer bytes accepted in all.
    public let maxTrailerBytes: Int
    public private(set) var body: [UInt8] = []
    private var state = State.sizeLine
    private var line: [UInt8] = []
    private var trailerBytes = 0

    public init(maxBodyBytes: Int, maxLineBytes: Int = 1024, maxTrailerBytes: Int = 8192) {
        self.maxBodyBytes = maxBodyBytes
        self.maxLineBytes = maxLineBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    public var isComplete: Bool { state == .done }

    /// Feeds the next bytes of the body as they arrived. After a failure or `complete`, the
    /// decoder must not be fed again.
    public mutating func feed<C: Collection>(_ input: C) throws(Failure) -> Progress where C.Element == UInt8, C.Index == Int {
        var i = input.startIndex
        while i < input.endIndex {
            switch state {
            case .done:
                return .complete(unused: input.endIndex - i)
            case .data(let remaining):
                let n = min(remaining, input.endIndex - i)
                body.append(contentsOf: input[i..<(i + n)])
                i += n
                state = n == remaining ? .dataEnd(sawCR: false) : .data(remaining: remaining - n)
            case .dataEnd(let sawCR):
                let byte = input[i]
                i += 1
                if !sawCR && byte == 0x0D {
                    state = .dataEnd(sawCR: true)
                } else if sawCR && byte == 0x0A {
                    state = .sizeLine
                } else {
                    throw .malformed("a chunk's data is not followed by CRLF (the chunk size does not match its data)")
                }
            case .sizeLine, .trailerLine:
                let byte = input[i]
                i += 1
                if byte != 0x0A {
                    line.append(byte)
                    if line.count > maxLineBytes + 1 {  // + 1: the CR
                        throw .malformed(state == .sizeLine ? "a chunk-size line is longer than \(maxLineBytes) bytes"
                                                            : "a trailer line is longer than \(maxLineBytes) bytes")
                    }
                    continue
                }
                guard line.last == 0x0D else { throw .malformed("a line in the chunked framing does not end in CRLF") }
                line.removeLast()
                if state == .sizeLine {
                    try endSizeLine()
                } else {
                    try endTrailerLine()
                }
                line.removeAll(keepingCapacity: true)
            }
        }
        return state == .done ? .complete(unused: 0) : .needMore
    }

    private mutating func endSizeLine() throws(Failure) {
        // chunk-size [ BWS ";" extension... ]: only the size is used.
        var digits = line[...]
        if let semicolon = line.firstIndex(of: UInt8(ascii: ";")) {
            let extensions = line[(semicolon + 1)...]
            if extensions.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                throw .malformed("a chunk extension contains a control character")
            }
            digits = line[..<semicolon]
        }
        while let last = digits.last, last == 0x20 || last == 0x09 { digits.removeLast() }
        guard !digits.isEmpty else { throw .malformed("a chunk-size line has no size") }
        var size = 0
        for d in digits {
            guard let v = Self.hexValue(d) else {
                throw .malformed("a chunk size is not hexadecimal")
            }
            size = size * 16 + v
            if size > maxBodyBytes - body.count { throw .tooLarge }
        }
        state = size == 0 ? .trailerLine : .data(remaining: size)
    }

    private mutating func endTrailerLine() throws(Failure) {
        if line.isEmpty {
            state = .done
            return
        }
        trailerBytes += line.count + 2
        guard trailerBytes <= maxTrailerBytes else { throw .malformed("the trailer section is longer than \(maxTrailerBytes) bytes") }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
              !line.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
            throw .malformed("a trailer line is not a header field (name: value)")
        }
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}
