/// The query of a request as name/value pairs, in order.
///
/// libwebsockets hands the query over already split at `&` and percent-decoded, one fragment per
/// pair (`lws_hdr_copy_fragment` on `WSI_TOKEN_HTTP_URI_ARGS`), so a decoded `&`, `=` or `%` inside a
/// value stays inside it: the fragments are never joined and decoded a second time.
public struct QueryItems: Sendable, Equatable {
    public private(set) var pairs: [(name: String, value: String)]

    public init(pairs: [(name: String, value: String)] = []) {
        self.pairs = pairs
    }

    /// Pairs from decoded fragments ("name=value", "name", "=", ""). Empty fragments and pairs
    /// with an empty name are dropped; the value is everything after the first `=`.
    public init<S: Sequence>(fragments: S) where S.Element == String {
        var pairs: [(String, String)] = []
        for fragment in fragments {
            let name: Substring, value: Substring
            if let eq = fragment.firstIndex(of: "=") {
                name = fragment[..<eq]
                value = fragment[fragment.index(after: eq)...]
            } else {
                name = fragment[...]
                value = ""
            }
            guard !name.isEmpty else { continue }
            pairs.append((String(name), String(value)))
        }
        self.pairs = pairs
    }

    /// Pairs from a raw query string (`a=1&b=%20x+y`): split at `&`, then percent-decoded, `+` as a
    /// space. Malformed escapes are kept as they are. For strings that did not come through lws.
    public init(raw: String) {
        self.init(fragments: raw.split(separator: "&", omittingEmptySubsequences: true).map { part -> String in
            let spaced = part.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        })
    }

    /// The last value given for `name` (later pairs win, as in most servers).
    public subscript(_ name: String) -> String? {
        pairs.last { $0.name == name }?.value
    }

    public var isEmpty: Bool { pairs.isEmpty }

    public static func == (a: QueryItems, b: QueryItems) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
