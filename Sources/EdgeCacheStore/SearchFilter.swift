import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// The part of a search that both stores answer the same way: which rows the query's `_id` and
/// index terms allow, and the WHERE clause for those rows and the `_lastUpdated` bounds. Each
/// store adds its own table, tenant column and page query.
struct SearchFilter {
    /// SQL conditions joined by AND, and their arguments in order.
    private(set) var conditions: String
    private(set) var arguments: StatementArguments

    /// The rows the query's `_id` values and term groups allow: the `_id` row keys, and a
    /// subquery of the row keys that have a term of every group. Neither is read into memory:
    /// the page query looks rows up by them.
    struct Candidates {
        /// The `_id` row keys (nil: any).
        var ids: [Data]?
        /// `SELECT rkey …` of the rows with a term of every group, and its arguments (nil: no groups).
        var terms: (sql: String, arguments: StatementArguments)?
        /// Nothing can match (an empty `_id` list or term group).
        var isEmpty = false
    }

    /// The candidates of `query` (nil when its `_id` values and term groups restrict nothing).
    /// The clauses' groups are used only when the store's terms are of the current scheme
    /// (`indexCurrent`); otherwise those clauses are decided on every row of the type. `tenant`
    /// scopes the origin's `terms`; nil at the edge. The smallest group (counted up to a bound)
    /// drives the lookup, and each other group is an index probe per candidate, so a broad term
    /// (`category=vital-signs` over a million rows) costs no more than the narrow one it is
    /// combined with.
    static func candidates(
        _ query: SearchQuery, keys: TenantKeys, type: String, indexCurrent: Bool, db: Database, tenant: String?
    ) throws -> Candidates? {
        let ids: [Data]? = query.ids.map { Array(Set($0.map { Data(ResourceBlob.key(keys, type: type, id: $0)) })) }
        let groups = (query.termGroups + (indexCurrent ? query.indexGroups : [])).map { group in
            group.map { Data(ResourceBlob.termKey(keys, type: type, term: $0)) }
        }
        guard ids != nil || !groups.isEmpty else { return nil }
        // SQLite takes at most 32766 arguments.
        if let ids, ids.count > SearchQuery.maxCandidates { throw tooCostly(type) }
        var candidates = Candidates(ids: ids)
        if ids?.isEmpty == true || groups.contains(where: \.isEmpty) {
            candidates.isEmpty = true
            return candidates
        }
        guard !groups.isEmpty else { return candidates }
        let scope = tenant == nil ? "" : "tenant = ? AND "
        func scoped(_ terms: [Data]) -> StatementArguments {
            StatementArguments(
                (tenant.map { [$0 as any DatabaseValueConvertible] } ?? []) + terms.map { $0 as any DatabaseValueConvertible })
        }
        func marks(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ",") }
        let bound = 5000
        // With one group there is nothing to order.
        let sized =
            try groups.count == 1
            ? [(0, groups[0])]
            : groups.map { group in
                let n =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM (SELECT 1 FROM terms WHERE \(scope)term IN (\(marks(group.count))) LIMIT \(bound))",
                        arguments: scoped(group)) ?? 0
                return (n, group)
            }.sorted { $0.0 < $1.0 }
        var sql = "SELECT t.rkey FROM terms t WHERE \(scope.isEmpty ? "" : "t.tenant = ? AND ")t.term IN (\(marks(sized[0].1.count)))"
        var arguments = scoped(sized[0].1)
        for (_, group) in sized.dropFirst() {
            let tenantJoin = tenant == nil ? "" : "u.tenant = t.tenant AND "
            sql += " AND EXISTS (SELECT 1 FROM terms u WHERE \(tenantJoin)u.term IN (\(marks(group.count))) AND u.rkey = t.rkey)"
            _ = arguments.append(contentsOf: StatementArguments(group))
        }
        candidates.terms = (sql, arguments)
        return candidates
    }

    /// The current, non-deleted rows of a type (`tkey`; of `tenant` at the origin) narrowed by
    /// the query's `_lastUpdated` bounds and the candidate rows; `prefix` qualifies the columns
    /// (`r.` in a join). Nil when the candidates are an empty set: nothing can match. With
    /// candidates, the type and deletion tests are written `+column` so that SQLite looks the
    /// rows up by key instead of walking the type's index (it cannot know that a few hundred
    /// keys are fewer than a type's million rows).
    init?(tenant: String?, tkey: Data, prefix: String = "", query: SearchQuery, candidates: Candidates?) {
        let plus = candidates == nil ? "" : "+"
        conditions = "\(plus)\(prefix)tkey = ? AND \(plus)\(prefix)deleted = 0"
        arguments = [tkey]
        if let tenant {
            conditions = "\(prefix)tenant = ? AND " + conditions
            arguments = [tenant, tkey]
        }
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
            if let ids = candidates.ids {
                conditions += " AND \(prefix)rkey IN (\(Array(repeating: "?", count: ids.count).joined(separator: ",")))"
                _ = self.arguments.append(contentsOf: StatementArguments(ids))
            }
            if let terms = candidates.terms {
                conditions += " AND \(prefix)rkey IN (\(terms.sql))"
                _ = self.arguments.append(contentsOf: terms.arguments)
            }
        }
    }

    /// The arguments followed by a LIMIT of one more than the most candidates a search may
    /// unseal (``SearchQuery/maxCandidates``) and no offset: the rows ``SearchQuery/select(_:)``
    /// chooses among.
    func selectionArguments() -> StatementArguments {
        var all = arguments
        _ = all.append(contentsOf: [SearchQuery.maxCandidates + 1, 0])
        return all
    }

    /// The refusal of a search whose candidates are more than a store unseals for one answer.
    static func tooCostly(_ type: String) -> FHIRError {
        FHIRError(
            status: 400, code: "too-costly",
            "This \(type) search would read more than \(SearchQuery.maxCandidates) resources; narrow it (a patient, a code, an identifier or a name of 3 or more characters)"
        )
    }

    /// The rows of a page in the order both roles share, `_lastUpdated` then id: row keys are
    /// keyed hashes that differ between the edge and the origin, so rows of the same
    /// millisecond cannot be ordered by them. Reads the page's `last_updated` span (cheap: no
    /// bodies), then every row in it, including all ties at its ends; the caller opens them,
    /// sorts by (lastUpdated, id) and drops the first `skip`. `table` is the FROM clause, and
    /// `select` the columns to read.
    func tieSafePage(
        _ db: Database, table: String, select: String, prefix: String = "", query: SearchQuery
    ) throws -> (rows: [Row], skip: Int) {
        let stamps = try Int64.fetchAll(
            db, sql: "SELECT \(prefix)last_updated FROM \(table) WHERE \(conditions) ORDER BY \(prefix)last_updated LIMIT ? OFFSET ?",
            arguments: pageArguments(query))
        guard let low = stamps.first, let high = stamps.last else { return ([], 0) }
        var before = arguments
        _ = before.append(contentsOf: [low])
        let skip =
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table) WHERE \(conditions) AND \(prefix)last_updated < ?", arguments: before)
            ?? 0
        var window = arguments
        _ = window.append(contentsOf: [low, high])
        let rows = try Row.fetchAll(
            db, sql: "SELECT \(select) FROM \(table) WHERE \(conditions) AND \(prefix)last_updated BETWEEN ? AND ?", arguments: window)
        return (rows, query.offset - skip)
    }

    /// The page of `window` (opened rows of ``tieSafePage``) after `skip` rows, in
    /// (lastUpdated, id) order.
    static func page(_ window: [ResourceVersion], skip: Int, query: SearchQuery, total: Int) -> SearchPage {
        let sorted = window.sorted { ($0.lastUpdated, $0.id) < ($1.lastUpdated, $1.id) }
        let start = min(max(skip, 0), sorted.count)
        let resources = Array(sorted[start..<min(sorted.count, start + query.count)])
        return SearchPage(resources: resources, total: total, hasMore: query.offset + resources.count < total)
    }

    /// The arguments followed by the page's LIMIT (one row more than the page, which tells
    /// whether another page follows) and OFFSET.
    func pageArguments(_ query: SearchQuery) -> StatementArguments {
        var page = arguments
        _ = page.append(contentsOf: [query.count + 1, query.offset])
        return page
    }
}

/// Whether a store's index terms are of the current scheme (``SearchTerms/version``): read
/// from its `meta` row `search_index` until it is, then remembered. Until then a search decides
/// its clauses on every row of the type instead of narrowing by terms the rows may lack.
final class SearchIndexState: Sendable {
    private let current = Mutex(false)

    func isCurrent(_ pool: DatabasePool) async throws -> Bool {
        if current.withLock({ $0 }) { return true }
        let stored = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'search_index'") } ?? 0
        guard stored == SearchTerms.version else { return false }
        current.withLock { $0 = true }
        return true
    }

    /// Records in `db` (the last batch's transaction) that every row's terms are current.
    func markCurrent(_ db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('search_index', ?)", arguments: [SearchTerms.version])
    }

    func remember() { current.withLock { $0 = true } }

    /// The migration that records the scheme of a file's terms: current for a file with no
    /// rows in `table` yet, the first scheme (1) otherwise, to be re-indexed online.
    static func migration(table: String) -> String {
        """
        INSERT OR IGNORE INTO meta(key, value)
        SELECT 'search_index', CASE WHEN EXISTS (SELECT 1 FROM \(table)) THEN 1 ELSE \(SearchTerms.version) END
        """
    }
}
