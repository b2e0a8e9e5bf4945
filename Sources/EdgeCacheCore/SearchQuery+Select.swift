extension SearchQuery {
    /// Most resources a store unseals to answer one search (and most rows its index narrows
    /// to); a search that would read more is refused as too costly (narrow it with a patient, a
    /// code or an identifier).
    package static let maxCandidates = 20_000

    /// The page of `candidates` (non-deleted resources the store narrowed to, a superset of the
    /// matches) that this query answers: those every clause matches, in `_sort` order (then
    /// `_lastUpdated`, then id, so the edge and the origin order ties the same), cut to
    /// `_offset` and `_count`. Total is the number of matches.
    package func select(_ candidates: [ResourceVersion]) -> SearchPage {
        var matched: [(resource: ResourceVersion, keys: [SortValue?])] = []
        for resource in candidates where !resource.deleted {
            if let ids, !ids.contains(resource.id) { continue }
            if let updatedFrom, resource.lastUpdated < updatedFrom { continue }
            if let updatedBefore, resource.lastUpdated >= updatedBefore { continue }
            guard case .object(let object)? = try? JSONParser.parse(resource.json) else { continue }
            guard clauses.allSatisfy({ $0.matches(object) }) else { continue }
            matched.append((resource, sort.map { sortValue(of: $0, resource, object) }))
        }
        matched.sort { a, b in
            for (index, key) in sort.enumerated() {
                switch (a.keys[index], b.keys[index]) {
                case (nil, nil): continue
                case (nil, _): return false  // a missing value sorts last either way
                case (_, nil): return true
                case (let x?, let y?):
                    if x == y { continue }
                    return key.descending ? y < x : x < y
                }
            }
            if a.resource.lastUpdated != b.resource.lastUpdated { return a.resource.lastUpdated < b.resource.lastUpdated }
            return a.resource.id < b.resource.id
        }
        let start = min(offset, matched.count)
        let end = min(matched.count, start + count)
        var page = SearchPage(resources: matched[start..<end].map(\.resource), total: matched.count, hasMore: matched.count > end)
        if page.hasMore { page.matchIDs = matched.map(\.resource.id) }
        return page
    }

    /// Whether `resource` has a term of every one of ``termGroups`` (a store narrows by them
    /// before ``select(_:)``; resources that come from elsewhere are checked with this).
    package func withinTermGroups(_ resource: ResourceVersion) -> Bool {
        guard !termGroups.isEmpty else { return true }
        guard case .object(let object)? = try? JSONParser.parse(resource.json) else { return false }
        let terms = Set(SearchTerms.compartmentTerms(from: object))
        return termGroups.allSatisfy { group in group.contains(where: terms.contains) }
    }

    /// A value a resource sorts by.
    package enum SortValue: Comparable, Sendable {
        case number(Double)
        case text(String)
    }

    /// The value of one sort key: the lowest of the element's values ascending, the highest
    /// descending (R4 3.1.1.4.9); nil when the resource has none.
    private func sortValue(of key: SortKey, _ resource: ResourceVersion, _ object: JSONObject) -> SortValue? {
        switch key.code {
        case "_id": return .text(resource.id)
        case "_lastUpdated": return .number(Double(resource.lastUpdated))
        default: break
        }
        guard let parameter = key.parameter else { return nil }
        let elements = parameter.paths.flatMap { $0.values(in: object) }
        var values: [SortValue] = []
        for (element, _) in elements {
            switch parameter.kind {
            case .date:
                let ranges = SearchDates.ranges(of: element)
                if let v = SearchDates.sortKey(ranges, descending: key.descending) { values.append(.number(Double(v))) }
            case .string:
                values += SearchText.strings(of: element).map { .text(SearchText.normalize($0)) }
            case .token:
                values += SearchTokens.codings(of: element).map { .text($0.code) }
            case .number:
                if let n = SearchNumber(element) { values.append(.number(n.value)) }
            case .quantity:
                values += SearchNumber.quantities(of: element).map { .number($0.value.value) }
            case .uri:
                if let s = element.stringValue { values.append(.text(s)) }
            case .reference:
                continue
            }
        }
        return key.descending ? values.max() : values.min()
    }
}
