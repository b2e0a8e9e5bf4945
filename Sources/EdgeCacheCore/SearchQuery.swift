/// A parsed FHIR search over one resource type: the R4 search parameters of the generated
/// table (``SearchParameters``), `_sort`, `_count`, `_offset`. Strict by default: any other
/// parameter, modifier, chain or prefix is a 400 naming it, because a search that drops a
/// filter answers with more than was asked (a stopped medication in an "active" list). Under
/// `Prefer: handling=lenient` an unsupported parameter is left out, kept in
/// ``ignoredParameters``, reported in the Bundle and left out of its links. A malformed value
/// is a 400 either way.
///
/// A store narrows the rows it reads by ``ids``, ``termGroups``, ``indexGroups`` and the
/// `_lastUpdated` bounds, then ``select(_:)`` decides each resource exactly, sorts and pages.
package struct SearchQuery: Sendable, Equatable {
    package static let defaultCount = 50
    package static let maxCount = 1000

    /// `_id` values, any of which may match (nil: no restriction).
    package var ids: [String]?
    /// Groups of index terms every term scheme has (``SearchTerms/compartmentTerms(from:)``): a
    /// match has one term of every group. Added by callers that narrow a search (a patient's
    /// compartment); the clauses decide the rest.
    package var termGroups: [[String]] = []
    /// The search parameters, all of which must match.
    package var clauses: [SearchClause] = []
    /// `_sort` keys, in order.
    package var sort: [SortKey] = []
    /// Chains and reverse chains, resolved into ``clauses`` and ``ids`` by the responder
    /// before a backend searches (see `SearchQuery+Links.swift`).
    package var chains: [Chain] = []
    package var reverseChains: [ReverseChain] = []
    /// `_include` and `_revinclude`, applied by the responder to the page.
    package var includes: [Include] = []
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
    /// `_summary` and `_elements`: how each resource is written, never which ones match; kept
    /// apart from ``effectiveParameters`` so an edge asking the origin gets (and caches) whole
    /// resources. In the links with ``shapingParameters``.
    package var shaping = ResultShaping()
    package var shapingParameters: [(String, String)] = []

    package init() {}

    package static func == (lhs: SearchQuery, rhs: SearchQuery) -> Bool {
        lhs.ids == rhs.ids && lhs.termGroups == rhs.termGroups && lhs.updatedFrom == rhs.updatedFrom
            && lhs.updatedBefore == rhs.updatedBefore && lhs.count == rhs.count && lhs.offset == rhs.offset
            && lhs.effectiveParameters.map { "\($0.0)=\($0.1)" } == rhs.effectiveParameters.map { "\($0.0)=\($0.1)" }
    }

    /// One `_sort` key.
    package struct SortKey: Sendable {
        /// `_id`, `_lastUpdated` or a parameter of the type.
        package var code: String
        package var parameter: SearchParameters.Parameter?
        package var descending: Bool
    }

    /// Whether the query restricts anything beyond type and paging.
    package var isPlainListing: Bool { ids == nil && termGroups.isEmpty && clauses.isEmpty && updatedFrom == nil && updatedBefore == nil }

    /// Whether a store must unseal candidates and ``select(_:)`` among them (clauses to decide
    /// or an order other than the default), rather than page the rows it narrowed to.
    package var needsSelection: Bool { !clauses.isEmpty || !sort.isEmpty }

    /// Parameters that change how an answer is written, never which resources it holds:
    /// accepted with any search (`_format` is checked by the responder). The total is always
    /// counted exactly when it is given, so `_total` (checked below) and `_totalMethod` (fhirpy's
    /// `count()` sends it) ask for nothing this node does not do.
    package static let presentation: Set<String> = ["_format", "_pretty", "_total", "_totalMethod"]

    /// Parses decoded query parameters of a search of `type`.
    /// - Parameter lenient: `Prefer: handling=lenient`: unsupported parameters are ignored and
    ///   reported instead of refused.
    /// - Throws: 400 for a malformed value, and (unless `lenient`) for a parameter, modifier,
    ///   chain or sort key this node does not support.
    package static func parse(_ parameters: [(String, String)], type: String, lenient: Bool = false) throws(FHIRError) -> SearchQuery {
        var query = SearchQuery()
        var kept: [(String, String)] = []
        var summary: String?
        var elements: String?
        /// Applies one parameter and keeps it for the links; one this node does not support
        /// (`not-supported`) is refused, or under lenient handling left out and reported as `reported`.
        func take(
            _ rawName: String, _ value: String, reported: String, _ apply: (inout SearchQuery) throws(FHIRError) -> Void
        ) throws(FHIRError) {
            do throws(FHIRError) {
                try apply(&query)
                kept.append((rawName, value))
            } catch  where error.code == "not-supported" {
                guard lenient else { throw error }
                query.ignoredParameters.append(String(reported.prefix(80)))
            }
        }
        for (rawName, value) in parameters {
            let parts = rawName.split(separator: ":", maxSplits: 1)
            let name = parts.first.map(String.init) ?? rawName
            let modifier = parts.count == 2 ? String(parts[1]) : nil
            switch name {
            case "_total":
                guard ["none", "estimate", "accurate"].contains(value) else {
                    throw .invalid("_total must be none, estimate or accurate")
                }
                continue
            case _ where presentation.contains(name):
                continue
            case "_summary" where modifier == nil:
                guard summary == nil else { throw .invalid("_summary is given more than once") }
                summary = value
                continue
            case "_elements" where modifier == nil:
                elements = elements.map { $0 + "," + value } ?? value
                continue
            case "_count":
                guard let n = Int(value), n >= 0 else { throw .invalid("_count must be a non-negative integer") }
                query.count = min(n, maxCount)
                continue
            case "_offset":
                guard let n = Int(value), n >= 0, n <= 1_000_000 else {
                    throw .invalid("_offset must be a non-negative integer")
                }
                query.offset = n
                continue
            case "_sort" where modifier == nil:
                try take(name, value, reported: "_sort=\(value)") { q throws(FHIRError) in q.sort += try parseSort(value, type: type) }
                continue
            case "_include", "_revinclude":
                try take(rawName, value, reported: "\(rawName)=\(value)") { q throws(FHIRError) in
                    q.includes.append(try parseInclude(name, modifier: modifier, value: value))
                }
                continue
            case "_has":
                try take(rawName, value, reported: rawName) { q throws(FHIRError) in
                    q.reverseChains.append(try parseReverseChain(rawName, value: value, type: type))
                }
                continue
            case _ where rawName.contains("."):
                try take(rawName, value, reported: rawName) { q throws(FHIRError) in
                    q.chains.append(try parseChain(rawName, value: value, type: type))
                }
                continue
            case "_id" where modifier == nil:
                let values = value.split(separator: ",").map(String.init)
                guard !values.isEmpty, values.allSatisfy({ ResourceID.isValid($0) }) else {
                    throw .invalid("_id must be one or more valid FHIR ids")
                }
                query.ids = (query.ids.map { Set($0).intersection(values) }.map(Array.init) ?? values).sorted()
                kept.append((name, value))
                continue
            case "_lastUpdated" where modifier == nil && !["ne", "sa", "eb", "ap"].contains(value.prefix(2)):
                try query.applyLastUpdated(value)
                kept.append((name, value))
                continue
            default:
                break
            }
            try take(rawName, value, reported: rawName) { q throws(FHIRError) in
                guard let parameter = SearchParameters.parameter(name, of: type) else {
                    throw FHIRError(
                        status: 400, code: "not-supported",
                        "The search parameter '\(rawName.prefix(80))' is not supported by this node for \(type); the CapabilityStatement lists those it supports. Send 'Prefer: handling=lenient' to have unsupported parameters ignored and reported instead"
                    )
                }
                q.clauses.append(try SearchClause(name: rawName, code: name, modifier: modifier, value: value, parameter: parameter))
            }
        }
        query.effectiveParameters = kept
        query.shaping = try ResultShaping.parse(summary: summary, elements: elements, type: type)
        if let summary { query.shapingParameters.append(("_summary", summary)) }
        if let elements { query.shapingParameters.append(("_elements", elements)) }
        if query.shaping.summary == .count { query.count = 0 }
        return query
    }

    private static func parseSort(_ value: String, type: String) throws(FHIRError) -> [SortKey] {
        var keys: [SortKey] = []
        for raw in value.split(separator: ",") {
            let descending = raw.hasPrefix("-")
            let code = String(descending ? raw.dropFirst() : raw)
            if code == "_id" || code == "_lastUpdated" {
                keys.append(SortKey(code: code, parameter: nil, descending: descending))
                continue
            }
            guard let parameter = SearchParameters.parameter(code, of: type), parameter.kind != .reference else {
                throw FHIRError(
                    status: 400, code: "not-supported",
                    "Cannot sort \(type) by '\(code.prefix(80))': sort keys are _id, _lastUpdated and the type's date, string, token, number, quantity and uri parameters"
                )
            }
            keys.append(SortKey(code: code, parameter: parameter, descending: descending))
        }
        guard !keys.isEmpty else { throw .invalid("_sort needs at least one key") }
        return keys
    }

    /// The term groups a store may narrow the clauses by (every resource that matches has one
    /// term of each group); clauses that cannot be narrowed are left to ``select(_:)``.
    package var indexGroups: [[String]] { clauses.compactMap(\.indexTerms) }

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
    /// Resources `_include` and `_revinclude` added (`search.mode` `include`).
    package var included: [ResourceVersion] = []
    /// The ids of every match in order, when the store had them at hand (``SearchQuery/select(_:)``
    /// decides them all): a responder keeps them for stable paging without searching again.
    package var matchIDs: [String]?

    package init(resources: [ResourceVersion], total: Int?, hasMore: Bool, included: [ResourceVersion] = []) {
        self.resources = resources
        self.total = total
        self.hasMore = hasMore
        self.included = included
    }
}
