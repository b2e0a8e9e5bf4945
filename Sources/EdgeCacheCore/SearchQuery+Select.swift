extension SearchQuery {
    /// Most resources a store unseals to answer one search (and most rows its index narrows
    /// to); a search that would read more is refused as too costly (narrow it with a patient, a
    /// code or an identifier).
    package static let maxCandidates = 20_000

    /// The page of `candidates` (non-deleted resources the store narrowed to, a superset of the
    /// matches) that this query answers: those every clause matches, in `_sort` order (then
    /// `_lastUpdated`, then id, so the edge and the origin order ties the same), cut to
    /// `_offset` and `_count`. Total is the number of matches.
    /// - Parameter termsDecided: the candidates are the rows that have a term of every group of
    ///   ``indexGroups``: clauses those terms decide exactly (``SearchClause/isExactByTerms``)
    ///   are not decided again.
    package func select(_ candidates: [ResourceVersion], termsDecided: Bool = false) -> SearchPage {
        var matched: [ResourceVersion] = []
        // The sort values, `sort.count` per match, side by side (sorting moves indices only).
        var keys: [SortValue?] = []
        let deciding = termsDecided ? clauses.filter { !($0.isExactByTerms && $0.indexTerms != nil) } : clauses
        // Only the top-level elements the remaining clauses and sort keys read are parsed.
        let steps = (deciding.map(\.parameter) + sort.compactMap(\.parameter)).flatMap { $0.paths.compactMap(\.steps.first) }
        // A name keeps the choice elements it starts (`effective`: `effectiveDateTime`, `effectivePeriod`).
        let needed = Set(steps.map(\.name)).map { Array($0.utf8) }
        let firstSortClause = sort.first?.parameter.flatMap { p in
            p.kind == .reference ? nil : deciding.firstIndex { $0.parameter.code == p.code && $0.parameter.paths == p.paths }
        }
        for resource in candidates where !resource.deleted {
            if let ids, !ids.contains(resource.id) { continue }
            if let updatedFrom, resource.lastUpdated < updatedFrom { continue }
            if let updatedBefore, resource.lastUpdated >= updatedBefore { continue }
            let object: JSONObject
            if needed.isEmpty {
                object = JSONObject()
            } else {
                guard let parsed = try? JSONParser.members(of: resource.json, named: needed) else { continue }
                object = parsed
            }
            // The first sort key usually reads what a clause read (`date=ge…&_sort=-date`): once.
            var sharedElements: [(value: JSONValue, type: String?)]?
            var matches = true
            for (index, clause) in deciding.enumerated() {
                let found = clause.elements(in: object)
                guard clause.matches(elements: found) else {
                    matches = false
                    break
                }
                if index == firstSortClause { sharedElements = found }
            }
            guard matches else { continue }
            matched.append(resource)
            for (index, key) in sort.enumerated() {
                let elements = index == 0 ? sharedElements : nil
                keys.append(
                    sortValue(of: key, resource, elements ?? key.parameter.map { p in p.paths.flatMap { $0.values(in: object) } } ?? []))
            }
        }
        let k = sort.count
        let descending = sort.map(\.descending)
        var order = Array(matched.indices)
        keys.withUnsafeBufferPointer { keys in
            matched.withUnsafeBufferPointer { rows in
                order.sort { i, j in
                    for index in 0..<k {
                        switch (keys[i * k + index], keys[j * k + index]) {
                        case (nil, nil): continue
                        case (nil, _): return false  // a missing value sorts last either way
                        case (_, nil): return true
                        case (let x?, let y?):
                            if x == y { continue }
                            return descending[index] ? y < x : x < y
                        }
                    }
                    if rows[i].lastUpdated != rows[j].lastUpdated { return rows[i].lastUpdated < rows[j].lastUpdated }
                    return rows[i].id < rows[j].id
                }
            }
        }
        let start = min(offset, order.count)
        let end = min(order.count, start + count)
        var page = SearchPage(resources: order[start..<end].map { matched[$0] }, total: order.count, hasMore: order.count > end)
        if page.hasMore { page.matchIDs = order.map { matched[$0].id } }
        return page
    }

    /// Whether `resource` has a term of every one of ``termGroups`` (a store narrows by them
    /// before ``select(_:termsDecided:)``; resources that come from elsewhere are checked with this).
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
    private func sortValue(of key: SortKey, _ resource: ResourceVersion, _ elements: [(value: JSONValue, type: String?)]) -> SortValue? {
        switch key.code {
        case "_id": return .text(resource.id)
        case "_lastUpdated": return .number(Double(resource.lastUpdated))
        default: break
        }
        guard let parameter = key.parameter else { return nil }
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
