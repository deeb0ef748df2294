import CCurl
import Foundation

// Every libcurl call of the project lives in this file. An `HTTPClient` owns one easy handle
// (curl_easy_cleanup in deinit) and is used by one thread: the alert dispatcher's.

/// What a receiver answered.
public struct HTTPReply: Sendable, Equatable {
    public var status: Int
    /// `Retry-After` in seconds (the delay form; an HTTP date is read as well).
    public var retryAfterSeconds: Double?
    public var body: String
}

/// A POST that did not get an answer.
public struct HTTPClientError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

public final class HTTPClient {
    private let handle: UnsafeMutableRawPointer
    private static let initialised: Bool = {
        curl_global_init(3)  // CURL_GLOBAL_ALL (an expression macro Swift does not import)
        return true
    }()

    public init() {
        _ = Self.initialised
        handle = curl_easy_init()!
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// POSTs `body` to `url` and waits for the answer, at most `timeout` seconds in all.
    public func post(_ url: String, headers: [(String, String)], body: String, timeout: Double) -> Result<HTTPReply, HTTPClientError> {
        curl_easy_reset(handle)
        let sink = ReplySink()
        let box = Unmanaged.passRetained(sink)
        defer { box.release() }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in headers + [("Expect", "")] {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        defer { curl_slist_free_all(list) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let bytes = Array(body.utf8)
        let code: CURLcode = bytes.withUnsafeBufferPointer { payload in
            errorBuffer.withUnsafeMutableBufferPointer { errors in
                sightline_curl_set_string(handle, CURLOPT_URL, url)
                sightline_curl_set_long(handle, CURLOPT_POST, 1)
                sightline_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: payload.baseAddress))
                sightline_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, payload.count)
                sightline_curl_set_pointer(handle, CURLOPT_HTTPHEADER, list.map { UnsafeMutableRawPointer($0) })
                sightline_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
                sightline_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(min(timeout, 5) * 1000))
                sightline_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
                sightline_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
                sightline_curl_set_string(handle, CURLOPT_USERAGENT, "sightline-alerts/1")
                sightline_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress)
                sightline_curl_set_write(handle) { data, size, count, context in
                    let sink = Unmanaged<ReplySink>.fromOpaque(context!).takeUnretainedValue()
                    let n = size * count
                    if sink.body.count < 64 << 10, let data {
                        sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n))
                    }
                    return n
                }
                sightline_curl_set_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque())
                sightline_curl_set_header_function(handle) { data, size, count, context in
                    let sink = Unmanaged<ReplySink>.fromOpaque(context!).takeUnretainedValue()
                    let n = size * count
                    if let data, let line = String(bytes: UnsafeRawBufferPointer(start: data, count: n), encoding: .utf8) {
                        sink.header(line)
                    }
                    return n
                }
                sightline_curl_set_pointer(handle, CURLOPT_HEADERDATA, box.toOpaque())
                return curl_easy_perform(handle)
            }
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(HTTPClientError(message: "POST \(url): \(text)"))
        }
        var status = 0
        sightline_curl_response_code(handle, &status)
        return .success(HTTPReply(status: status, retryAfterSeconds: sink.retryAfter,
                                  body: String(decoding: sink.body.prefix(2048), as: UTF8.self)))
    }
}

/// Collects one reply's body and the headers we read.
private final class ReplySink {
    var body: [UInt8] = []
    var retryAfter: Double?

    func header(_ line: String) {
        if line.hasPrefix("HTTP/") { retryAfter = nil }  // a new response (after 100 Continue)
        guard let colon = line.firstIndex(of: ":"),
              line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "retry-after" else { return }
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        retryAfter = Self.retryAfter(value, now: Date())
    }

    /// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
    static func retryAfter(_ value: String, now: Date) -> Double? {
        if let seconds = Double(value), seconds >= 0 { return seconds }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: value).map { max(0, $0.timeIntervalSince(now)) }
    }
}
