import EdgeCacheCore

/// Builds searchset and history Bundles, splicing stored resource JSON in without re-parsing it.
package enum FHIRBundle {
    private static func append(_ s: String, _ out: inout [UInt8]) { out.append(contentsOf: Array(s.utf8)) }

    private static func link(_ relation: String, _ url: String, _ out: inout [UInt8]) {
        append("{\"relation\":\"\(relation)\",\"url\":", &out)
        JSONValue.writeString(url, into: &out)
        append("}", &out)
    }

    /// A `searchset` Bundle with absolute `self`, `next` and `previous` links on `baseURL` and
    /// `path` (the type searched, or `Patient/id/Type` for a compartment search).
    /// - Parameters:
    ///   - snapshot: the token of the kept match list (``SearchSnapshots``) the links page through.
    ///   - unstablePaging: more matches than a snapshot holds: the Bundle says its pages are cut
    ///     by offset from the data as it is when each is asked for.
    package static func searchset(
        _ page: SearchPage, path: String, query: SearchQuery, baseURL: String, now: Int64, snapshot: String? = nil,
        unstablePaging: Bool = false
    ) -> [UInt8] {
        func url(offset: Int) -> String {
            var parts = (query.effectiveParameters + query.shapingParameters).map {
                "\(QueryString.encode($0.0))=\(QueryString.encode($0.1))"
            }
            if let snapshot { parts.append("_snapshot=\(snapshot)") }
            parts.append("_count=\(query.count)")
            if offset > 0 { parts.append("_offset=\(offset)") }
            return "\(baseURL)/\(path)?" + parts.joined(separator: "&")
        }
        var out: [UInt8] = []
        out.reserveCapacity(page.resources.reduce(512) { $0 + $1.json.count + 128 })
        append("{\"resourceType\":\"Bundle\",\"meta\":{\"lastUpdated\":\"\(FHIRTime.instant(millis: now))\"},", &out)
        append("\"type\":\"searchset\",", &out)
        if let total = page.total { append("\"total\":\(total),", &out) }
        append("\"link\":[", &out)
        link("self", url(offset: query.offset), &out)
        // `_count=0` asks for the total only: a next link would point at the same page forever.
        if page.hasMore, query.count > 0 {
            append(",", &out)
            link("next", url(offset: query.offset + query.count), &out)
        }
        if query.offset > 0 {
            append(",", &out)
            link("previous", url(offset: max(0, query.offset - query.count)), &out)
        }
        append("],\"entry\":[", &out)
        for (i, r) in page.resources.enumerated() {
            if i > 0 { append(",", &out) }
            append("{\"fullUrl\":", &out)
            JSONValue.writeString("\(baseURL)/\(r.type)/\(r.id)", into: &out)
            append(",\"resource\":", &out)
            out.append(contentsOf: query.shaping.apply(r.json, type: r.type))
            append(",\"search\":{\"mode\":\"match\"}}", &out)
        }
        for (i, r) in page.included.enumerated() {
            if i > 0 || !page.resources.isEmpty { append(",", &out) }
            append("{\"fullUrl\":", &out)
            JSONValue.writeString("\(baseURL)/\(r.type)/\(r.id)", into: &out)
            append(",\"resource\":", &out)
            out.append(contentsOf: r.json)
            append(",\"search\":{\"mode\":\"include\"}}", &out)
        }
        var outcomes: [(code: String, diagnostics: String)] = []
        if !query.ignoredParameters.isEmpty {
            // Lenient handling: what was not applied is said in the answer, not only left out of its links.
            outcomes.append(
                (
                    "not-supported",
                    "Not supported, so ignored (Prefer: handling=lenient): " + query.ignoredParameters.joined(separator: ", ")
                ))
        }
        if unstablePaging {
            outcomes.append(
                (
                    "too-costly",
                    "This search's matches are not kept for its pages (more than \(SearchSnapshots.maxMatches), or they could not all be read now): the next pages are cut from the data as it is when each is asked for, so a change in between can move a resource across a page boundary. Narrow the search for stable pages"
                ))
        }
        for (i, outcome) in outcomes.enumerated() {
            if i > 0 || !page.resources.isEmpty || !page.included.isEmpty { append(",", &out) }
            append("{\"resource\":", &out)
            out.append(contentsOf: OperationOutcome.json(severity: "warning", code: outcome.code, diagnostics: outcome.diagnostics))
            append(",\"search\":{\"mode\":\"outcome\"}}", &out)
        }
        append("]}", &out)
        return out
    }

    /// A `history` Bundle, newest version first.
    package static func history(_ versions: [ResourceVersion], baseURL: String, now: Int64) -> [UInt8] {
        var out: [UInt8] = []
        append("{\"resourceType\":\"Bundle\",\"meta\":{\"lastUpdated\":\"\(FHIRTime.instant(millis: now))\"},", &out)
        append("\"type\":\"history\",\"total\":\(versions.count),\"entry\":[", &out)
        for (i, r) in versions.enumerated() {
            if i > 0 { append(",", &out) }
            append("{\"fullUrl\":", &out)
            JSONValue.writeString("\(baseURL)/\(r.type)/\(r.id)", into: &out)
            if !r.deleted {
                append(",\"resource\":", &out)
                out.append(contentsOf: r.json)
            }
            let method = r.deleted ? "DELETE" : (r.version == 1 ? "POST" : "PUT")
            let requestURL = method == "POST" ? r.type : "\(r.type)/\(r.id)"
            append(",\"request\":{\"method\":\"\(method)\",\"url\":", &out)
            JSONValue.writeString(requestURL, into: &out)
            let status = r.deleted ? "204" : (r.version == 1 ? "201" : "200")
            append("},\"response\":{\"status\":\"\(status)\",\"etag\":", &out)
            JSONValue.writeString(r.etag, into: &out)
            append(",\"lastModified\":\"\(FHIRTime.instant(millis: r.lastUpdated))\"}}", &out)
        }
        append("]}", &out)
        return out
    }
}
