import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// Counters an edge keeps in its database, updated in the same transactions as what they count.
package struct EdgeStoreCounters: Sendable, Equatable {
    /// Last LSN applied (the stream checkpoint).
    package var checkpoint: Int64
    /// Stream events that changed the store.
    package var eventsApplied: Int64
    /// Stream events that were re-deliveries or older than what is stored (no-ops).
    package var eventsSkipped: Int64
    /// Times the store was replaced from a snapshot.
    package var bootstraps: Int64
    /// When the edge last knew it held everything up to the origin's head (wall-clock epoch
    /// ms, 0 if never): restores honest staleness across a restart while the origin is away.
    package var caughtUpAt: Int64
    /// Entries quarantined because their sealed bytes failed authentication (see ``CorruptEntryError``).
    package var quarantined: Int64
    /// The origin log epoch the cache holds data of (``LogEpoch/storedValue``; 0: not known).
    package var originEpoch: Int64
    /// Times the origin's log epoch changed (each followed by a bootstrap).
    package var epochChanges: Int64

    package init(
        checkpoint: Int64, eventsApplied: Int64, eventsSkipped: Int64, bootstraps: Int64, caughtUpAt: Int64 = 0, quarantined: Int64 = 0,
        originEpoch: Int64 = 0, epochChanges: Int64 = 0
    ) {
        self.originEpoch = originEpoch
        self.epochChanges = epochChanges
        self.checkpoint = checkpoint
        self.eventsApplied = eventsApplied
        self.eventsSkipped = eventsSkipped
        self.bootstraps = bootstraps
        self.caughtUpAt = caughtUpAt
        self.quarantined = quarantined
    }
}

/// What the parts of an ``EdgeStore`` share: the one connection pool to `edge.sqlite`, the
/// tenant's keys, the clock, and the in-memory figures several tables move (the counters kept
/// in `meta`, the quarantine and queue sizes, the hot tier).
///
/// Each table's owner (``CacheEntries``, ``StreamPosition``, ``OutboxTable``, ``ConsentLane``,
/// ``CacheEviction``, ``PolicyTable``) holds this and writes through the same pool, so an
/// operation spanning tables stays one SQLite transaction.
final class EdgeDatabase: Sendable {
    let pool: DatabasePool
    let ring: KeyRing
    let kek: KeyEncryptionKey
    let clock: any WallClock
    /// Plaintext of recently read entries (see ``HotTier``).
    let hot: HotTier
    let countersCache: Mutex<EdgeStoreCounters>
    /// Rows in `quarantine` (entries awaiting repair), as last counted.
    let quarantinePending: Mutex<Int>
    /// Queued outbox entries, as last counted plus those enqueued since (refreshed by
    /// ``OutboxTable/refreshQueuedCount()``, so it stays right when the CLI changes the outbox).
    let queuedEstimate: Mutex<Int>

    init(
        pool: DatabasePool, ring: KeyRing, kek: KeyEncryptionKey, clock: any WallClock, hot: HotTier, counters: EdgeStoreCounters,
        quarantined: Int, queued: Int
    ) {
        self.pool = pool
        self.ring = ring
        self.kek = kek
        self.clock = clock
        self.hot = hot
        self.countersCache = Mutex(counters)
        self.quarantinePending = Mutex(quarantined)
        self.queuedEstimate = Mutex(queued)
    }

    /// The tenant's current keys as last seen (lookup keys are stable across rotations).
    var keys: TenantKeys { ring.current }

    /// The counters as last committed.
    var counters: EdgeStoreCounters { countersCache.withLock { $0 } }

    /// Keeps the counters read at the end of a committed write.
    func committed(_ counters: EdgeStoreCounters) {
        countersCache.withLock { $0 = counters }
    }

    static func readCounters(_ db: Database) throws -> EdgeStoreCounters {
        var values: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta") { values[row["key"]] = row["value"] }
        return EdgeStoreCounters(
            checkpoint: values["checkpoint"] ?? 0, eventsApplied: values["events_applied"] ?? 0,
            eventsSkipped: values["events_skipped"] ?? 0, bootstraps: values["bootstraps"] ?? 0,
            caughtUpAt: values["caught_up_at"] ?? 0, quarantined: values["quarantined"] ?? 0,
            originEpoch: values["origin_epoch"] ?? 0, epochChanges: values["epoch_changes"] ?? 0)
    }

    /// Runs one `meta` statement and keeps the counters it leaves.
    func updateMeta(_ sql: String, _ arguments: StatementArguments) async throws {
        let counters = try await pool.write { db in
            try db.execute(sql: sql, arguments: arguments)
            return try Self.readCounters(db)
        }
        committed(counters)
    }
}
