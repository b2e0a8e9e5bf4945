/// A parsed FHIR search: `_id`, `identifier`, `patient`, `subject`, `_lastUpdated`, `_count`,
/// `_offset`. Strict by default: any other parameter is a 400 naming it, because a search that
/// drops a filter answers with more than was asked (a stopped medication in an "active" list).
/// Under `Prefer: handling=lenient` an unsupported parameter is left out, kept in
/// ``ignoredParameters`` and reported in the Bundle, and left out of its links.
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
    /// Parameters left out under lenient handling (never applied, never in links).
    package var ignoredParameters: [String] = []

    package init() {}

    package static func == (lhs: SearchQuery, rhs: SearchQuery) -> Bool {
        lhs.ids == rhs.ids && lhs.termGroups == rhs.termGroups && lhs.updatedFrom == rhs.updatedFrom
            && lhs.updatedBefore == rhs.updatedBefore && lhs.count == rhs.count && lhs.offset == rhs.offset
    }

    /// Whether the query restricts anything beyond type and paging.
    package var isPlainListing: Bool { ids == nil && termGroups.isEmpty && updatedFrom == nil && updatedBefore == nil }

    /// The search parameters this node understands.
    package static let supported: Set<String> = ["_id", "identifier", "patient", "subject", "_lastUpdated", "_count", "_offset"]

    /// Parameters that change how an answer is written, never which resources it holds:
    /// accepted with any search (`_format` is checked by the responder). The total is always
    /// counted exactly when it is given, so `_total` (checked below) and `_totalMethod` (fhirpy's
    /// `count()` sends it) ask for nothing this node does not do.
    package static let presentation: Set<String> = ["_format", "_pretty", "_total", "_totalMethod"]

    /// Parses decoded query parameters.
    /// - Parameter lenient: `Prefer: handling=lenient`: unsupported parameters are ignored and
    ///   reported instead of refused.
    /// - Throws: 400 for a malformed value of a supported parameter, and (unless `lenient`) for
    ///   a parameter, modifier or chain this node does not support.
    package static func parse(_ parameters: [(String, String)], lenient: Bool = false) throws(FHIRError) -> SearchQuery {
        var query = SearchQuery()
        var kept: [(String, String)] = []
        for (rawName, value) in parameters {
            let parts = rawName.split(separator: ":", maxSplits: 1)
            let name = parts.first.map(String.init) ?? rawName
            guard Self.supported.contains(name) || Self.presentation.contains(name) else {
                if lenient {
                    query.ignoredParameters.append(String(rawName.prefix(80)))
                    continue
                }
                throw FHIRError(
                    status: 400, code: "not-supported",
                    "The search parameter '\(rawName.prefix(80))' is not supported by this node; supported: _id, identifier, patient, subject, _lastUpdated, _count, _offset. Send 'Prefer: handling=lenient' to have unsupported parameters ignored and reported instead"
                )
            }
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
            case "_total":
                guard ["none", "estimate", "accurate"].contains(value) else {
                    throw .invalid("_total must be none, estimate or accurate")
                }
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
