import EdgeCacheCore
import Foundation
import GRDB

extension CacheEntries {
    /// Whether the entries' search terms are of the current scheme (see ``SearchIndexState``).
    func searchIndexCurrent() async throws -> Bool { try await searchIndex.isCurrent(pool) }

    /// Rewrites the search terms of every entry under the current scheme, a batch per write
    /// transaction, while the edge serves; searches read every row of a type until the last
    /// batch commits. Returns the entries re-indexed, or nil when the terms were current.
    /// - Parameter progress: called after each batch with (entries done, entries at the start).
    package func reindexSearchTerms(batchSize: Int = 250, progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> Int? {
        if try await searchIndexCurrent() { return nil }
        let total = try await count()
        let keys = self.keys
        var after = Data()
        var done = 0
        while true {
            let from = after
            let batch = try await pool.write { db -> (count: Int, last: Data?) in
                let rows = try Row.fetchAll(
                    db, sql: "SELECT version, last_updated, deleted, blob, rkey FROM entries WHERE rkey > ? ORDER BY rkey LIMIT ?",
                    arguments: [from, batchSize])
                for row in rows {
                    let rkey: Data = row["rkey"]
                    try db.cachedStatement(sql: "DELETE FROM terms WHERE rkey = ?").execute(arguments: [rkey])
                    // An entry that does not open is served by nobody (reads quarantine it): no terms.
                    guard let resource = try? self.open(row, rkey: Array(rkey)), !resource.deleted,
                        case .object(let object)? = try? JSONParser.parse(resource.json)
                    else { continue }
                    for term in SearchTerms.extract(from: object, type: resource.type) {
                        try db.cachedStatement(sql: "INSERT OR IGNORE INTO terms(term, rkey) VALUES (?, ?)")
                            .execute(arguments: [Data(ResourceBlob.termKey(keys, type: resource.type, term: term)), rkey])
                    }
                }
                if rows.count < batchSize { try self.searchIndex.markCurrent(db) }
                return (rows.count, rows.last.map { $0["rkey"] as Data })
            }
            done += batch.count
            progress(done, total)
            guard let last = batch.last, batch.count == batchSize else { break }
            after = last
        }
        searchIndex.remember()
        return done
    }
}
