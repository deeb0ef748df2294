import CLibWebSockets
import Foundation

/// One HTTP transaction (lifetime: LWS_CALLBACK_HTTP to the response's last byte or the close).
struct HTTPExchange {
    let wsi: OpaquePointer
    let head: HTTPRequestHead
    var body: [UInt8] = []
    /// The request is being refused (or answered) before its body was read: drop what arrives,
    /// and close the connection after the response, since the rest of the body would follow.
    var ignoringBody = false
    var closeAfterResponse = false
    var dispatched = false
    /// The body must have arrived by then (lws restarts its own timeout on every byte, so a
    /// trickle would never end without this).
    var bodyDeadline: Date?
    /// Answered early and still open by then: closed without waiting for the client.
    var killAt: Date?
    /// Dispatched and not answered by then: 504 (a delegate that lost the request).
    var answerDeadline: Date?
    /// The whole body has arrived (or was never announced).
    var bodyDone = false
    /// The response went out; the connection waits for the rest of the body, then closes.
    var responded = false
    /// After an early answer, read (and drop) the rest of the body before closing, so a client
    /// that sends it all before reading gets the answer. Not for a client that is too slow.
    var drainBody = true
    var response: HTTPResponse?
    var headersSent = false
    var sentBytes = 0
    /// Decodes a `Transfer-Encoding: chunked` body (lws passes its framing through as is).
    var chunked: ChunkedDecoder?
}

/// A header value shortened for a message.
private func jsonSafe(_ s: String) -> String {
    "\"" + String(s.prefix(80)) + "\""
}

extension LWSServer {
    private static let methods: [(lws_token_indexes, String)] = [
        (WSI_TOKEN_GET_URI, "GET"), (WSI_TOKEN_POST_URI, "POST"), (WSI_TOKEN_PUT_URI, "PUT"),
        (WSI_TOKEN_DELETE_URI, "DELETE"), (WSI_TOKEN_PATCH_URI, "PATCH"), (WSI_TOKEN_OPTIONS_URI, "OPTIONS"),
        (WSI_TOKEN_HEAD_URI, "HEAD"),
    ]

    func startExchange(_ wsi: OpaquePointer, _ slot: UnsafeMutablePointer<UInt64>) -> Int32 {
        var method = "GET", path = ""
        for (token, name) in Self.methods where lws_hdr_total_length(wsi, token) > 0 {
            method = name
            path = header(wsi, token)
            break
        }
        nextID += 1
        slot.pointee = nextID
        let head = HTTPRequestHead(method: method, path: path, query: query(wsi), headers: headers(wsi), peer: peer(wsi))
        exchanges[nextID] = HTTPExchange(wsi: wsi, head: head)
        let id = RequestID(value: nextID)
        let length = head.headers["content-length"].map { Int($0.trimmingCharacters(in: .whitespaces)) }
        let chunked = head.headers["transfer-encoding"] != nil
        let expectsBody = chunked || (length.flatMap { $0 } ?? 0) > 0

        // Aliases are answered here (a mount would redirect to "/alias/" and drop the query).
        if let file = configuration.staticAliases[path], let root = configuration.staticRoot, method == "GET" || method == "HEAD" {
            if let data = FileManager.default.contents(atPath: root + "/" + file) {
                answerEarly(id, HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(data)), expectsBody)
            } else {
                answerEarly(id, .error(status: 404, code: "not_found", message: "no such file \(path)"), expectsBody)
            }
            return 0
        }
        guard configuration.callbackPrefixes.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) else {
            // A static file that is not there falls through to here.
            answerEarly(id, .error(status: 404, code: "not_found", message: "no such file \(path)"), expectsBody)
            return 0
        }
        if !hostAllowed(head.headers["host"] ?? "") {
            answerEarly(id, .error(status: 403, code: "host_not_allowed",
                                   message: "this server does not answer to the host name \(jsonSafe(head.headers["host"] ?? ""))",
                                   hint: "use a configured name (serve --allowed-host)"), expectsBody)
            return 0
        }
        if !["GET", "HEAD", "OPTIONS"].contains(method), !originAllowed(head.headers["origin"] ?? "", host: head.headers["host"] ?? "") {
            answerEarly(id, .error(status: 403, code: "origin_not_allowed",
                                   message: "requests from the page \(jsonSafe(head.headers["origin"] ?? "")) may not change anything here",
                                   hint: "serve --allowed-origin names the pages that may"), expectsBody)
            return 0
        }
        if let length, length == nil || length! < 0 {
            answerEarly(id, .error(status: 400, code: "bad_request", message: "Content-Length is not a number"), expectsBody)
            return 0
        }
        if chunked {
            // lws reads a body (undecoded) only for these methods; for others the framing
            // would be taken for the next request.
            let coding = head.headers["transfer-encoding"]!.trimmingCharacters(in: .whitespaces).lowercased()
            if let refusal = chunkedRefusal(method: method, coding: coding, hasLength: length != nil) {
                answerEarly(id, refusal, true)
                return 0
            }
        }
        if let length = length ?? nil, length > configuration.maxHTTPBodyBytes {
            answerEarly(id, tooLarge, true)
            return 0
        }
        // Refusals (a missing token, a wrong method) are decided on the headers alone: a body is
        // never read for a request that will be refused.
        if let refusal = delegate?.server(self, shouldAccept: head) {
            answerEarly(id, refusal, expectsBody)
            return 0
        }
        if chunked {
            exchanges[nextID]?.chunked = ChunkedDecoder(maxBodyBytes: configuration.maxHTTPBodyBytes)
        }
        if expectsBody {
            exchanges[nextID]?.bodyDeadline = Date(timeIntervalSinceNow: TimeInterval(configuration.bodyTimeoutSeconds))
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, Int32(configuration.bodyTimeoutSeconds))
        } else {
            dispatch(nextID)
        }
        return 0
    }

    /// Answers before (or instead of) reading the body.
    private func answerEarly(_ id: RequestID, _ response: HTTPResponse, _ expectsBody: Bool, drain: Bool = true) {
        guard var e = exchanges[id.value] else { return }
        e.ignoringBody = true
        e.drainBody = drain
        e.closeAfterResponse = expectsBody
        e.dispatched = true
        e.bodyDeadline = nil
        e.bodyDone = !expectsBody
        exchanges[id.value] = e
        respond(id, response)
    }

    /// Answers 408 to requests whose body is late, and closes connections that were answered
    /// early but are still open (a client that never reads). Called on every tick.
    func expireSlowBodies(now: Date) {
        for (id, e) in exchanges {
            if let deadline = e.bodyDeadline, now >= deadline {
                answerEarly(RequestID(value: id), .error(status: 408, code: "request_timeout",
                                                         message: "the body did not arrive within \(configuration.bodyTimeoutSeconds) s"),
                            true, drain: false)
            } else if let deadline = e.answerDeadline, e.response == nil, now >= deadline {
                respond(RequestID(value: id), .error(status: 504, code: "no_answer",
                                                     message: "the request got no answer within \(configuration.answerTimeoutSeconds) s",
                                                     hint: "retry later; the server log says what held it"))
            } else if let killAt = e.killAt, now >= killAt {
                exchanges[id]?.killAt = nil
                lws_set_timeout(e.wsi, PENDING_TIMEOUT_USER_OK, -1)  // LWS_TO_KILL_ASYNC
            }
        }
    }

    private func chunkedRefusal(method: String, coding: String, hasLength: Bool) -> HTTPResponse? {
        if !["POST", "PUT", "PATCH"].contains(method) {
            return .error(status: 400, code: "bad_request", message: "a \(method) request carries no body",
                          hint: "send the request without Transfer-Encoding")
        }
        if coding != "chunked" {
            return .error(status: 400, code: "bad_request", message: "the only transfer coding accepted is chunked",
                          hint: "send the body with Transfer-Encoding: chunked or a Content-Length")
        }
        if hasLength {
            return .error(status: 400, code: "bad_request", message: "a request has either a Content-Length or Transfer-Encoding, not both")
        }
        return nil
    }

    func receiveBody(_ id: UInt64, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard var e = exchanges[id], !e.ignoringBody else { return 0 }
        if e.chunked != nil { return receiveChunked(id, &e, UnsafeRawBufferPointer(start: input, count: input == nil ? 0 : length)) }
        if e.body.count + length > configuration.maxHTTPBodyBytes {
            release(&e)
            exchanges[id] = e
            answerEarly(RequestID(value: id), tooLarge, true)
            return 0
        }
        if bufferedBodyBytes + length > configuration.maxBufferedBodyBytes {
            release(&e)
            exchanges[id] = e
            answerEarly(RequestID(value: id), .error(status: 503, code: "busy", message: "too many request bodies in flight",
                                                     hint: "retry shortly"), true, drain: false)
            return 0
        }
        if let input, length > 0 {
            e.body.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            bufferedBodyBytes += length
        }
        exchanges[id] = e
        return 0
    }

    /// lws never signals the end of a chunked body (it waits for 100 MiB): the last chunk
    /// completes the request, and the connection closes after the response, since lws still
    /// takes whatever follows for body.
    private func receiveChunked(_ id: UInt64, _ e: inout HTTPExchange, _ input: UnsafeRawBufferPointer) -> Int32 {
        // Decoded bytes are never more than the bytes that arrived.
        if bufferedBodyBytes + input.count > configuration.maxBufferedBodyBytes {
            release(&e)
            exchanges[id] = e
            answerEarly(RequestID(value: id), .error(status: 503, code: "busy", message: "too many request bodies in flight",
                                                     hint: "retry shortly"), true, drain: false)
            return 0
        }
        let before = e.chunked!.body.count
        let progress: ChunkedDecoder.Progress
        do {
            progress = try e.chunked!.feed(input)
        } catch {
            release(&e)
            exchanges[id] = e
            let response: HTTPResponse = switch error {
            case .tooLarge: tooLarge
            case .malformed(let why): .error(status: 400, code: "bad_request", message: "the chunked body is malformed: \(why)",
                                             hint: "frame each chunk as its size in hex, CRLF, the data, CRLF; end with 0 CRLF CRLF")
            }
            answerEarly(RequestID(value: id), response, true)
            return 0
        }
        bufferedBodyBytes += e.chunked!.body.count - before
        guard progress != .needMore else {
            exchanges[id] = e
            return 0
        }
        e.body = e.chunked!.body
        e.chunked = nil
        e.ignoringBody = true
        e.closeAfterResponse = true
        e.bodyDone = true
        e.bodyDeadline = nil
        exchanges[id] = e
        dispatch(id)
        return 0
    }

    func bodyComplete(_ id: UInt64) -> Int32 {
        exchanges[id]?.bodyDone = true
        // Answered early, and the client has now sent the rest: close as announced.
        if exchanges[id]?.responded == true { return -1 }
        guard let e = exchanges[id], !e.dispatched else { return 0 }
        exchanges[id]?.bodyDeadline = nil
        dispatch(id)
        return 0
    }

    private func release(_ e: inout HTTPExchange) {
        bufferedBodyBytes -= e.body.count + (e.chunked?.body.count ?? 0)
        e.body = []
        e.chunked = nil
    }

    func endExchange(_ id: UInt64) {
        guard var e = exchanges.removeValue(forKey: id) else { return }
        release(&e)
    }

    private var tooLarge: HTTPResponse {
        .error(status: 413, code: "body_too_large", message: "the body is larger than \(configuration.maxHTTPBodyBytes) bytes")
    }

    private func dispatch(_ id: UInt64) {
        guard var e = exchanges[id] else { return }
        e.dispatched = true
        e.answerDeadline = Date(timeIntervalSinceNow: TimeInterval(configuration.answerTimeoutSeconds))
        let body = e.body
        release(&e)
        exchanges[id] = e
        // The request is complete: whatever lws timed until now (the head, the body) is over.
        // lws would otherwise close the connection without an answer when its own pending
        // timeout (5 s) runs out while the delegate still works (a long read off the loop).
        // The delegate bounds its own work (statement timeouts); `answerDeadline` backs it up.
        lws_set_timeout(e.wsi, NO_PENDING_TIMEOUT, 0)
        let request = HTTPRequest(id: RequestID(value: id), head: e.head, body: body)
        if let delegate {
            delegate.server(self, handle: .request(request))
        } else {
            respond(request.id, .error(status: 503, code: "starting", message: "the server is starting", hint: "retry shortly"))
        }
    }

    /// Answers a request (once; later answers are ignored). Loop thread.
    public func respond(_ id: RequestID, _ response: HTTPResponse) {
        guard var e = exchanges[id.value], e.response == nil else { return }
        e.response = response
        exchanges[id.value] = e
        lws_callback_on_writable(e.wsi)
    }

    func writeResponse(_ wsi: OpaquePointer, _ slot: UnsafeMutablePointer<UInt64>) -> Int32 {
        guard var e = exchanges[slot.pointee], let response = e.response else { return 0 }
        let isHead = e.head.method == "HEAD"
        let chunk = 16 * 1024
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(SIGHTLINE_LWS_PRE) + chunk + 2048)
        defer { buffer.deallocate() }
        let start = buffer + Int(SIGHTLINE_LWS_PRE)
        if !e.headersSent {
            var p: UnsafeMutablePointer<UInt8>? = start
            let end = start + chunk + 2047
            if lws_add_http_common_headers(wsi, UInt32(response.status), response.contentType,
                                           lws_filepos_t(response.body.count), &p, end) != 0 { return -1 }
            var extra = response.headers
            extra.append(("cache-control", "no-store"))
            if e.closeAfterResponse { extra.append(("connection", "close")) }
            for (name, value) in extra {
                let n = name.lowercased() + ":"
                if lws_add_http_header_by_name(wsi, n, value, Int32(value.utf8.count), &p, end) != 0 { return -1 }
            }
            if lws_finalize_write_http_header(wsi, start, &p, end) != 0 { return -1 }
            e.headersSent = true
            exchanges[slot.pointee] = e
            if !response.body.isEmpty && !isHead {
                // A client that stops reading a long answer is closed once no byte could be
                // written for this long (the timer restarts with every chunk).
                lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, Int32(configuration.stalledResponseSeconds))
                lws_callback_on_writable(wsi)
                return 0
            }
        } else {
            let remaining = response.body.count - e.sentBytes
            let n = min(chunk, remaining)
            response.body.withUnsafeBufferPointer { src in
                if let base = src.baseAddress { start.update(from: base + e.sentBytes, count: n) }
            }
            let final = n == remaining
            if lws_write(wsi, start, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != n { return -1 }
            e.sentBytes += n
            exchanges[slot.pointee] = e
            if !final {
                lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, Int32(configuration.stalledResponseSeconds))
                lws_callback_on_writable(wsi)
                return 0
            }
        }
        if e.closeAfterResponse && !e.bodyDone && e.drainBody {
            // The client may still be sending the body it announced: let it finish (what
            // arrives is dropped) so it can read this answer, then close; at the latest after
            // the body timeout.
            exchanges[slot.pointee]?.responded = true
            exchanges[slot.pointee]?.killAt = Date(timeIntervalSinceNow: TimeInterval(configuration.bodyTimeoutSeconds))
            return 0
        }
        let close = e.closeAfterResponse
        endExchange(slot.pointee)
        slot.pointee = 0
        if close { return -1 }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }
}
