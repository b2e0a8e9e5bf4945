import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// Why an entry left the cache.
package enum EvictionReason: String, Sendable, CaseIterable {
    /// The cache was over its byte budget.
    case budget
    /// A resident entry was not read for its class's retention period.
    case retention
}

/// An evicted entry, for the audit trail.
package struct EvictedEntry: Sendable {
    package var type: String
    package var id: String
    package var version: Int64
    package var reason: EvictionReason
}

/// Eviction from the edge cache: when entries were last read (`entries.accessed_at`), the
/// least recently read or unread-too-long entries to remove, and how many left for each reason
/// (meta `evicted_budget`, `evicted_retention`). Entries are removed through ``CacheEntries``.
package final class CacheEviction: Sendable {
    let core: EdgeDatabase
    let entries: CacheEntries

    init(core: EdgeDatabase, entries: CacheEntries) {
        self.core = core
        self.entries = entries
    }

    var keys: TenantKeys { core.keys }

    /// Records when entries were last read (batched by the caller), for LRU.
    package func recordAccess(_ accessed: [(type: String, id: String, at: Int64)]) async throws {
        guard !accessed.isEmpty else { return }
        let keys = self.keys
        let rows = accessed.map { (Data(ResourceBlob.key(keys, type: $0.type, id: $0.id)), $0.at) }
        try await core.pool.write { db in
            for (rkey, at) in rows {
                try db.cachedStatement(sql: "UPDATE entries SET accessed_at = max(accessed_at, ?) WHERE rkey = ?")
                    .execute(arguments: [at, rkey])
            }
        }
    }

    /// Bytes of sealed entries of the given types.
    package func entryBytes(types: [String]) async throws -> Int64 {
        guard !types.isEmpty else { return 0 }
        let tkeys = types.map { Data(ResourceBlob.typeKey(keys, type: $0)) }
        return try await core.pool.read { db in
            try Int64.fetchOne(
                db,
                sql: "SELECT COALESCE(SUM(length(blob)), 0) FROM entries WHERE tkey IN (\(tkeys.map { _ in "?" }.joined(separator: ",")))",
                arguments: StatementArguments(tkeys)) ?? 0
        }
    }

    /// Evicts least recently read entries of `types` (all of one eviction priority) until
    /// `bytes` are freed or none are left; entries with queued writes stay. Returns what left.
    package func evictLeastRecentlyRead(types: [String], bytes: Int64, limit: Int = 500) async throws -> [EvictedEntry] {
        try await evict(types: types, reason: .budget, limit: limit, bytes: bytes, readBefore: nil)
    }

    /// Evicts entries of `types` not read (nor stored) since `cutoff`.
    package func evictUnreadSince(_ cutoff: Int64, types: [String], limit: Int = 500) async throws -> [EvictedEntry] {
        try await evict(types: types, reason: .retention, limit: limit, bytes: nil, readBefore: cutoff)
    }

    private func evict(
        types: [String], reason: EvictionReason, limit: Int, bytes: Int64?, readBefore: Int64?
    ) async throws
        -> [EvictedEntry]
    {
        guard !types.isEmpty else { return [] }
        let tkeys = types.map { Data(ResourceBlob.typeKey(keys, type: $0)) }
        let placeholders = tkeys.map { _ in "?" }.joined(separator: ",")
        let entries = self.entries
        let rows = try await core.pool.writeRows { db -> [Row] in
            var arguments = StatementArguments(tkeys)
            var condition = ""
            if let readBefore {
                condition = "AND max(accessed_at, stored_at) < ?"
                _ = arguments.append(contentsOf: [readBefore])
            }
            _ = arguments.append(contentsOf: [limit])
            let candidates = try Row.fetchAll(
                db,
                sql: """
                    SELECT version, last_updated, deleted, blob, rkey FROM entries e
                    WHERE tkey IN (\(placeholders)) \(condition)
                    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.rkey = e.rkey AND o.state IN \(OutboxState.unfinished))
                    ORDER BY max(accessed_at, stored_at) LIMIT ?
                    """, arguments: arguments)
            var freed: Int64 = 0
            var gone: [Row] = []
            for row in candidates {
                if let bytes, freed >= bytes { break }
                try entries.remove(db, rkey: row["rkey"])
                freed += Int64((row["blob"] as Data).count)
                gone.append(row)
            }
            try db.execute(
                sql: "UPDATE meta SET value = value + ? WHERE key = ?", arguments: [gone.count, "evicted_\(reason.rawValue)"])
            return gone
        }
        return rows.compactMap { row in
            guard let r = try? entries.open(row, rkey: Array(row["rkey"] as Data)) else { return nil }
            return EvictedEntry(type: r.type, id: r.id, version: r.version, reason: reason)
        }
    }

    /// Evictions so far, by reason.
    package func counts() async throws -> [EvictionReason: Int64] {
        try await core.pool.read { db in
            var counts: [EvictionReason: Int64] = [:]
            for reason in EvictionReason.allCases {
                counts[reason] =
                    try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: ["evicted_\(reason.rawValue)"]) ?? 0
            }
            return counts
        }
    }
}
