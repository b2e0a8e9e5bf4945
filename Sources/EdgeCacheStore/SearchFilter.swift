import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// The part of a search that both stores answer the same way: which rows the query's `_id` and
/// index terms allow, and the WHERE clause for those rows and the `_lastUpdated` bounds. Each
/// store adds its own table, tenant column and page query.
struct SearchFilter {
    /// SQL conditions joined by AND, and their arguments in order.
    private(set) var conditions: String
    private(set) var arguments: StatementArguments

    /// The row keys the query's `_id` values and term groups allow (a match needs one term of
    /// every group), or nil when they restrict nothing. `rows` looks one term key up.
    static func candidates(
        _ query: SearchQuery, keys: TenantKeys, type: String, rows: (Data) throws -> [Data]
    ) rethrows -> Set<Data>? {
        var candidates: Set<Data>? = query.ids.map { Set($0.map { Data(ResourceBlob.key(keys, type: type, id: $0)) }) }
        for group in query.termGroups {
            var matches = Set<Data>()
            for term in group {
                matches.formUnion(try rows(Data(ResourceBlob.termKey(keys, type: type, term: term))))
            }
            candidates = candidates.map { $0.intersection(matches) } ?? matches
        }
        return candidates
    }

    /// `base` (with its arguments) narrowed by the query's `_lastUpdated` bounds and the
    /// candidate rows; `prefix` qualifies the columns (`r.` in a join). Nil when the candidates
    /// are an empty set: nothing can match.
    init?(base: String, arguments: StatementArguments, prefix: String = "", query: SearchQuery, candidates: Set<Data>?) {
        conditions = base
        self.arguments = arguments
        if let from = query.updatedFrom {
            conditions += " AND \(prefix)last_updated >= ?"
            _ = self.arguments.append(contentsOf: [from])
        }
        if let before = query.updatedBefore {
            conditions += " AND \(prefix)last_updated < ?"
            _ = self.arguments.append(contentsOf: [before])
        }
        if let candidates {
            if candidates.isEmpty { return nil }
            conditions += " AND \(prefix)rkey IN (\(Array(repeating: "?", count: candidates.count).joined(separator: ",")))"
            _ = self.arguments.append(contentsOf: StatementArguments(Array(candidates)))
        }
    }

    /// The arguments followed by the page's LIMIT (one row more than the page, which tells
    /// whether another page follows) and OFFSET.
    func pageArguments(_ query: SearchQuery) -> StatementArguments {
        var page = arguments
        _ = page.append(contentsOf: [query.count + 1, query.offset])
        return page
    }
}
