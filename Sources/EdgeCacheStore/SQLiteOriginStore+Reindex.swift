import EdgeCacheCore
import Foundation
import GRDB

extension SQLiteOriginStore {
    /// Whether the resources' search terms are of the current scheme (see ``SearchIndexState``).
    func searchIndexCurrent() async throws -> Bool { try await searchIndex.isCurrent(indexPool) }

    /// Rewrites the search terms of every tenant's current resources under the current scheme,
    /// a batch per write transaction, while the origin serves; searches read every row of a
    /// type until the last batch commits. Returns the resources re-indexed, or nil when the
    /// terms were current.
    package func reindexSearchTerms(batchSize: Int = 250, progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> Int? {
        if try await searchIndexCurrent() { return nil }
        let (tenants, total) = try await indexPool.read { db in
            (
                try String.fetchAll(db, sql: "SELECT DISTINCT tenant FROM resources ORDER BY tenant"),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM resources") ?? 0
            )
        }
        var done = 0
        for tenant in tenants {
            let keys = try await keysForSearchIndex(tenant: tenant)
            var after = Data()
            while true {
                let from = after
                let batch = try await indexPool.write { db -> (count: Int, last: Data?) in
                    let rows = try Row.fetchAll(
                        db,
                        sql: """
                            SELECT h.version, h.last_updated, h.deleted, h.blob, r.rkey FROM resources r
                            JOIN history h ON h.tenant = r.tenant AND h.rkey = r.rkey AND h.version = r.version
                            WHERE r.tenant = ? AND r.rkey > ? ORDER BY r.rkey LIMIT ?
                            """, arguments: [tenant, from, batchSize])
                    for row in rows {
                        let rkey: Data = row["rkey"]
                        try db.cachedStatement(sql: "DELETE FROM terms WHERE tenant = ? AND rkey = ?").execute(arguments: [tenant, rkey])
                        let resource = try self.openForSearchIndex(row, keys: keys, rkey: Array(rkey), db: db)
                        guard !resource.deleted, case .object(let object)? = try? JSONParser.parse(resource.json) else { continue }
                        for term in SearchTerms.extract(from: object, type: resource.type) {
                            try db.cachedStatement(sql: "INSERT OR IGNORE INTO terms(tenant, term, rkey) VALUES (?, ?, ?)")
                                .execute(arguments: [tenant, Data(ResourceBlob.termKey(keys, type: resource.type, term: term)), rkey])
                        }
                    }
                    return (rows.count, rows.last.map { $0["rkey"] as Data })
                }
                done += batch.count
                progress(done, total)
                guard let last = batch.last, batch.count == batchSize else { break }
                after = last
            }
        }
        try await indexPool.write { db in try self.searchIndex.markCurrent(db) }
        searchIndex.remember()
        return done
    }
}
