import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// The edge's sealed database (`edge.sqlite`): one tenant, entries compressed and sealed,
/// looked up by keyed hashes, and the stream checkpoint committed with every batch it covers.
///
/// It opens the file, runs ``migrator`` and loads the tenant's keys; each table is then owned
/// by one type, all sharing the file's one connection pool:
/// - ``entries``: the cache itself (reads, searches, misses stored, quarantine, hot tier);
/// - ``stream``: the stream checkpoint and counters, snapshot bootstraps, the origin epoch;
/// - ``outbox``: queued writes, their replay outcomes and conflicts;
/// - ``consent``: the consent lane and compartment purges;
/// - ``eviction``: access times and evictions;
/// - ``policy``: the policy registry last received.
///
/// Key matters (``keys``, ``keysUsable()``, ``keyMaintenance``) span every sealed table and
/// stay here.
package final class EdgeStore: Sendable {
    let core: EdgeDatabase
    package let entries: CacheEntries
    package let stream: StreamPosition
    package let outbox: OutboxTable
    package let consent: ConsentLane
    package let eviction: CacheEviction
    package let policy: PolicyTable

    /// SQLite's page cache per connection of `edge.sqlite` (5 connections: at most 40 MiB): a
    /// patient's index terms and rows stay cached between the searches of a ward.
    static let pageCacheMiB = 8

    /// Opens (creating if needed) the edge database at `path` for `tenant`.
    /// - Parameter hotBytes: the in-memory hot tier's budget (0: none).
    package init(
        path: String, tenant: String, kek: KeyEncryptionKey, clock: any WallClock, hotBytes: Int = 0
    ) throws {
        let pool = try SQLiteFile.openPool(path: path, cacheMiB: EdgeStore.pageCacheMiB)
        let now = clock.nowMillis()
        try Self.migrator.migrate(pool)
        let (ring, counters) = try pool.write { db in
            let tenants = try String.fetchAll(db, sql: "SELECT DISTINCT tenant FROM data_keys")
            if let other = tenants.first(where: { $0 != tenant }) {
                throw StoreError(
                    "this data_dir holds the cache of tenant '\(other)', not '\(tenant)'; give each tenant its own data_dir")
            }
            let ring = try KeyRing(db, pool: pool, tenant: tenant, kek: kek, now: now)
            return (ring, try EdgeDatabase.readCounters(db))
        }
        let (queued, quarantined) = try pool.read { db in
            (try OutboxTable.queuedCount(db), try CacheEntries.quarantineCount(db))
        }
        let core = EdgeDatabase(
            pool: pool, ring: ring, kek: kek, clock: clock, hot: HotTier(budget: hotBytes), counters: counters,
            quarantined: quarantined, queued: queued)
        self.core = core
        entries = CacheEntries(core: core)
        outbox = OutboxTable(core: core, entries: entries)
        stream = StreamPosition(core: core, entries: entries, outbox: outbox)
        consent = ConsentLane(core: core, entries: entries)
        eviction = CacheEviction(core: core, entries: entries)
        policy = PolicyTable(core: core)
    }

    /// The clock the store stamps rows with.
    package var clock: any WallClock { core.clock }
}
