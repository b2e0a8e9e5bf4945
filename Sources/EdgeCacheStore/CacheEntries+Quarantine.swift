import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// Cached entries whose sealed bytes fail authentication (a flipped bit on disk, a torn page)
/// were quarantined: removed from the cache so they are never served, and remembered so that
/// searches of their type are answered by the origin until each is stored again.
///
/// The store thrown this after the quarantine is committed; the caller treats the entry as a
/// miss (reads fetch it again from the origin), counts it and logs it.
package struct CorruptEntryError: Error, Sendable, CustomStringConvertible {
    /// Entries quarantined by the read that found them.
    package let count: Int

    package var description: String {
        "\(count) cached entr\(count == 1 ? "y" : "ies") failed authentication and \(count == 1 ? "was" : "were") quarantined"
    }
}

extension CacheEntries {
    static let quarantineSchema = """
        CREATE TABLE IF NOT EXISTS quarantine(rkey BLOB PRIMARY KEY, tkey BLOB NOT NULL, quarantined_at INTEGER NOT NULL)
            WITHOUT ROWID;
        INSERT OR IGNORE INTO meta(key, value) VALUES ('quarantined', 0);
        """

    /// Thrown inside ``open(_:rkey:)`` when the row's own bytes are bad (not when a key is missing).
    struct SealedBytesRejected: Error {}

    /// Removes entries whose sealed bytes failed to open, if they still hold those bytes (a
    /// newer version stored meanwhile is left alone), remembers them in `quarantine`, and counts
    /// them (`meta.quarantined`, kept across restarts). Returns how many were quarantined.
    func quarantine(_ rows: [(rkey: Data, tkey: Data, blob: Data)]) async throws -> Int {
        let now = core.clock.nowMillis()
        let (count, counters, pending) = try await pool.write { db -> (Int, EdgeStoreCounters, Int) in
            var count = 0
            for row in rows {
                try db.execute(sql: "DELETE FROM entries WHERE rkey = ? AND blob = ?", arguments: [row.rkey, row.blob])
                guard db.changesCount > 0 else { continue }
                try db.execute(sql: "DELETE FROM terms WHERE rkey = ?", arguments: [row.rkey])
                try db.execute(
                    sql: "INSERT OR REPLACE INTO quarantine(rkey, tkey, quarantined_at) VALUES (?, ?, ?)",
                    arguments: [row.rkey, row.tkey, now])
                count += 1
            }
            try db.execute(sql: "UPDATE meta SET value = value + ? WHERE key = 'quarantined'", arguments: [count])
            return (count, try EdgeDatabase.readCounters(db), try Self.quarantineCount(db))
        }
        for row in rows { hot.forget(row.rkey) }
        core.committed(counters)
        core.quarantinePending.withLock { $0 = pending }
        return count
    }

    static func quarantineCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM quarantine") ?? 0
    }

    /// Entries quarantined and not stored again since (by a read, a forwarded search, the stream
    /// or a bootstrap).
    package var quarantinedEntries: Int { core.quarantinePending.withLock { $0 } }

    /// Whether a quarantined entry of `type` awaits repair: the cache's copy of the type is then
    /// incomplete, and searches of it need the origin.
    package func hasQuarantined(type: String) async throws -> Bool {
        guard quarantinedEntries > 0 else { return false }
        let tkey = Data(ResourceBlob.typeKey(keys, type: type))
        return try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM quarantine WHERE tkey = ? LIMIT 1", arguments: [tkey]) ?? false
        }
    }

    /// Inside a write that stored `rkey` in `entries`: it is no longer quarantined.
    func clearQuarantine(_ db: Database, rkey: Data) throws {
        guard quarantinedEntries > 0 else { return }
        try db.cachedStatement(sql: "DELETE FROM quarantine WHERE rkey = ?").execute(arguments: [rkey])
    }

    /// After a write transaction that may have cleared quarantine rows: re-reads the number left.
    func refreshQuarantineCount() async throws {
        guard quarantinedEntries > 0 else { return }
        let pending = try await pool.read { db in try Self.quarantineCount(db) }
        core.quarantinePending.withLock { $0 = pending }
    }

    /// After a snapshot replaced the cache (and emptied `quarantine`): nothing awaits repair.
    func quarantineEmptied() {
        core.quarantinePending.withLock { $0 = 0 }
    }
}
