/// A parsed FHIR search: `_id`, `identifier`, `patient`, `subject`, `_lastUpdated`, `_count`,
/// `_offset`. Unknown parameters are ignored (FHIR's lenient default) and left out of links.
package struct SearchQuery: Sendable, Equatable {
    package static let defaultCount = 50
    package static let maxCount = 1000

    /// `_id` values, any of which may match (nil: no restriction).
    package var ids: [String]?
    /// Groups of index terms: a match needs one term of every group.
    package var termGroups: [[String]] = []
    /// `_lastUpdated` lower bound, inclusive (epoch ms).
    package var updatedFrom: Int64?
    /// `_lastUpdated` upper bound, exclusive (epoch ms).
    package var updatedBefore: Int64?
    package var count: Int = SearchQuery.defaultCount
    package var offset: Int = 0
    /// The parameters that took effect, in order, for `self`/`next` links.
    package var effectiveParameters: [(String, String)] = []

    package init() {}

    package static func == (lhs: SearchQuery, rhs: SearchQuery) -> Bool {
        lhs.ids == rhs.ids && lhs.termGroups == rhs.termGroups && lhs.updatedFrom == rhs.updatedFrom
            && lhs.updatedBefore == rhs.updatedBefore && lhs.count == rhs.count && lhs.offset == rhs.offset
    }

    /// Whether the query restricts anything beyond type and paging.
    package var isPlainListing: Bool { ids == nil && termGroups.isEmpty && updatedFrom == nil && updatedBefore == nil }

    /// The search parameters this node understands (others are ignored, as FHIR's lenient handling allows).
    package static let supported: Set<String> = ["_id", "identifier", "patient", "subject", "_lastUpdated", "_count", "_offset"]

    /// Parses decoded query parameters.
    /// - Throws: 400 for a malformed value of a supported parameter.
    package static func parse(_ parameters: [(String, String)]) throws(FHIRError) -> SearchQuery {
        var query = SearchQuery()
        var kept: [(String, String)] = []
        for (rawName, value) in parameters {
            let parts = rawName.split(separator: ":", maxSplits: 1)
            let name = parts.first.map(String.init) ?? rawName
            if parts.count == 2, Self.supported.contains(name) {
                // Only the type modifier of a patient reference is understood; anything else
                // (`:not`, `:missing`, chains, `:of-type`, …) is refused rather than dropped.
                guard name == "patient" || name == "subject", parts[1] == "Patient" else {
                    throw FHIRError(
                        status: 400, code: "not-supported",
                        "The search modifier or chain '\(rawName.prefix(80))' is not supported; supported: _id, identifier, patient, subject (optionally :Patient), _lastUpdated, _count, _offset"
                    )
                }
            }
            switch name {
            case "_id":
                let values = value.split(separator: ",").map(String.init)
                guard !values.isEmpty, values.allSatisfy({ ResourceID.isValid($0) }) else {
                    throw .invalid("_id must be one or more valid FHIR ids")
                }
                query.ids = (query.ids.map { Set($0).intersection(values) }.map(Array.init) ?? values).sorted()
                kept.append((name, value))
            case "identifier":
                let group = value.split(separator: ",").map { token -> String in
                    let parts = token.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
                    if parts.count == 2 { return "identifier|\(parts[0])|\(parts[1])" }
                    return "identifier||\(token)"
                }
                guard !group.isEmpty else { throw .invalid("identifier needs a value") }
                query.termGroups.append(group)
                kept.append((name, value))
            case "patient", "subject":
                var group: [String] = []
                for token in value.split(separator: ",").map(String.init) {
                    let reference = token.contains("/") ? SearchTerms.normalizeReference(token) : "Patient/\(token)"
                    guard let reference, ResourceID.isValid(reference.split(separator: "/").last ?? "") else {
                        throw .invalid("\(name) must be a reference such as Patient/123")
                    }
                    group.append("\(name)|\(reference)")
                }
                guard !group.isEmpty else { throw .invalid("\(name) needs a value") }
                query.termGroups.append(group)
                kept.append((name, value))
            case "_lastUpdated":
                try query.applyLastUpdated(value)
                kept.append((name, value))
            case "_count":
                guard let n = Int(value), n >= 0 else { throw .invalid("_count must be a non-negative integer") }
                query.count = min(n, maxCount)
            case "_offset":
                guard let n = Int(value), n >= 0, n <= 1_000_000 else {
                    throw .invalid("_offset must be a non-negative integer")
                }
                query.offset = n
            default:
                continue
            }
        }
        query.effectiveParameters = kept
        return query
    }

    private mutating func applyLastUpdated(_ value: String) throws(FHIRError) {
        let prefixes = ["ge", "gt", "le", "lt", "eq"]
        var op = "eq"
        var text = value
        if let prefix = prefixes.first(where: { value.hasPrefix($0) }) {
            op = prefix
            text = String(value.dropFirst(2))
        }
        guard let range = FHIRTime.parseRange(text) else {
            throw .invalid("_lastUpdated must be a FHIR date or dateTime with an optional ge/gt/le/lt prefix")
        }
        func raiseFrom(_ v: Int64) { updatedFrom = max(updatedFrom ?? v, v) }
        func lowerBefore(_ v: Int64) { updatedBefore = min(updatedBefore ?? v, v) }
        switch op {
        case "ge": raiseFrom(range.start)
        case "gt": raiseFrom(range.end)
        case "le": lowerBefore(range.end)
        case "lt": lowerBefore(range.start)
        default:
            raiseFrom(range.start)
            lowerBefore(range.end)
        }
    }
}

/// One page of search results.
package struct SearchPage: Sendable {
    package var resources: [ResourceVersion]
    /// Total matches, when known.
    package var total: Int?
    /// Whether more matches follow this page.
    package var hasMore: Bool

    package init(resources: [ResourceVersion], total: Int?, hasMore: Bool) {
        self.resources = resources
        self.total = total
        self.hasMore = hasMore
    }
}
