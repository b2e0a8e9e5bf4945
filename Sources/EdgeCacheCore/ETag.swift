/// Parsing of entity tags as FHIR clients send them: `W/"3"`, `"3"` or a bare `3`.
package enum ETag {
    /// The version number named by an ETag-like header value, or nil if it names none.
    package static func version(from header: String) -> Int64? {
        var text = header.trimmingSpaces()
        if text.hasPrefix("W/") { text = String(text.dropFirst(2)) }
        if text.hasPrefix("\"") && text.hasSuffix("\"") && text.count >= 2 { text = String(text.dropFirst().dropLast()) }
        guard let value = Int64(text), value >= 0 else { return nil }
        return value
    }

    /// Versions listed in an `If-None-Match` header (comma separated); `*` matches any.
    package static func versions(fromList header: String) -> (any: Bool, versions: [Int64]) {
        var versions: [Int64] = []
        var any = false
        for part in header.split(separator: ",") {
            let token = String(part).trimmingSpaces()
            if token == "*" { any = true } else if let v = version(from: token) { versions.append(v) }
        }
        return (any, versions)
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
