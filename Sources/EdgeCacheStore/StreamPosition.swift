import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// Where the edge is in the origin's change stream: the checkpoint and stream counters in
/// `meta`, the origin log epoch the cache holds data of, and the snapshot staging a bootstrap
/// fills. Everything that moves the checkpoint writes the entries it covers in the same
/// transaction (through ``CacheEntries``), so a crash never leaves a checkpoint ahead of its data.
package final class StreamPosition: Sendable {
    let core: EdgeDatabase
    let entries: CacheEntries
    let outbox: OutboxTable

    init(core: EdgeDatabase, entries: CacheEntries, outbox: OutboxTable) {
        self.core = core
        self.entries = entries
        self.outbox = outbox
    }

    /// The counters as last committed.
    package var counters: EdgeStoreCounters { core.counters }

    // MARK: Stream batches

    /// Applies a batch of stream events and moves the checkpoint to `checkpoint`, in one transaction.
    ///
    /// Events at or below the current checkpoint, and versions not newer than the cached one, are
    /// no-ops (counted as skipped). Events of resident classes for entries not cached are ignored.
    /// - Parameter caughtUpAt: when given, records that the edge was caught up at that time.
    /// - Returns: the counters after the commit.
    @discardableResult
    package func apply(
        _ changes: [Change], checkpoint: Int64, isResident: @Sendable (String) -> Bool, caughtUpAt: Int64? = nil
    ) async throws -> EdgeStoreCounters {
        let entries = self.entries
        let sealed = try await entries.sealForCache(changes.map(\.resource))
        let now = core.clock.nowMillis()
        // The bug `tools/drill --inject checkpoint-apart` shows the drills catch: the checkpoint
        // moves in its own transaction, 200 ms before the batch it covers. Debug builds only.
        let apart = DrillFault.checkpointApart.isActive
        var early: Int64?
        if apart {
            early = try await core.pool.write { db in
                let current = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'checkpoint'") ?? 0
                try db.execute(sql: "UPDATE meta SET value = max(value, ?) WHERE key = 'checkpoint'", arguments: [checkpoint])
                return current
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let before = early
        let counters = try await core.pool.write { db -> EdgeStoreCounters in
            let current = try before ?? Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'checkpoint'") ?? 0
            let keysNow = try self.core.ring.refresh(db)
            var applied: Int64 = 0
            var skipped: Int64 = 0
            for (change, s) in zip(changes, sealed) {
                if change.lsn <= current {
                    skipped += 1
                    continue
                }
                // A quarantined entry counts as cached: the stream repairs it.
                if isResident(change.resource.type), try !entries.isCachedOrQuarantined(db, rkey: Data(s.rkey)) {
                    continue
                }
                if try entries.upsertIfNewer(db, change.resource, sealed: s, now: now, table: "", current: keysNow) {
                    applied += 1
                } else {
                    skipped += 1
                }
            }
            try db.execute(
                sql: """
                    UPDATE meta SET value = CASE key
                        WHEN 'checkpoint' THEN max(value, ?)
                        WHEN 'events_applied' THEN value + ?
                        WHEN 'events_skipped' THEN value + ?
                        WHEN 'caught_up_at' THEN max(value, ?) ELSE value END
                    """, arguments: [checkpoint, applied, skipped, caughtUpAt ?? 0])
            return try EdgeDatabase.readCounters(db)
        }
        core.committed(counters)
        try await entries.refreshQuarantineCount()
        return counters
    }

    // MARK: Bootstrap from a snapshot

    /// Empties the staging tables before a snapshot download.
    package func beginSnapshot() async throws {
        try await core.pool.write { db in try self.entries.clearStaging(db) }
    }

    /// Adds a page of snapshot resources to the staging tables (not visible to reads).
    package func stageSnapshot(_ resources: [ResourceVersion]) async throws {
        let entries = self.entries
        let sealed = try await entries.sealForCache(resources)
        let now = core.clock.nowMillis()
        try await core.pool.write { db in
            let current = try self.core.ring.refresh(db)
            for (r, s) in zip(resources, sealed) {
                _ = try entries.upsertIfNewer(db, r, sealed: s, now: now, table: "staged_", current: current)
            }
        }
    }

    /// Replaces the cache with the staged snapshot and sets the checkpoint to `lsn`, atomically:
    /// readers see either the old cache or the new one, never a mix. The consent lane's
    /// checkpoint is set to `lsn` too (the lane re-delivers any newer consent the swap replaced),
    /// and `epoch`, when the origin sent one, is recorded as the epoch the cache now holds.
    package func finishSnapshot(lsn: Int64, epoch: LogEpoch? = nil) async throws {
        let counters = try await core.pool.write { db -> EdgeStoreCounters in
            try self.entries.swapInStaged(db)
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'checkpoint'", arguments: [lsn])
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'bootstraps'")
            try ConsentLane.setCheckpoint(db, to: lsn)
            if let epoch {
                try db.execute(sql: Self.setOriginEpoch, arguments: [epoch.storedValue])
            }
            return try EdgeDatabase.readCounters(db)
        }
        core.committed(counters)
        entries.quarantineEmptied()
    }

    // MARK: Origin log epoch

    // The origin log epoch whose data this cache holds (meta `origin_epoch`; 0: not known yet) and
    // the number of epoch changes seen (meta `epoch_changes`, kept across restarts).

    private static let setOriginEpoch =
        "INSERT INTO meta(key, value) VALUES ('origin_epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"

    /// The epoch of the origin log the cache was filled from (nil: not known yet, e.g. an edge
    /// that followed an origin older than epochs).
    package var originEpoch: LogEpoch? { LogEpoch(storedValue: counters.originEpoch) }

    /// Records the origin's epoch the first time it is seen; the cache is kept.
    package func adoptOriginEpoch(_ epoch: LogEpoch) async throws {
        try await core.updateMeta(Self.setOriginEpoch, [epoch.storedValue])
    }

    /// Counts an epoch change and queues every retained finished write (`done`, kept for
    /// `outbox.retention_days`) again, in one transaction; the bootstrap that follows stores the
    /// new epoch with its snapshot.
    ///
    /// A restored origin may have lost writes it acknowledged. Replaying each retained write
    /// under its own Idempotency-Key is harmless where the origin still has it (it answers with
    /// the stored result) and re-commits it where it was lost. Each is based (If-Match) on the
    /// version it was committed over, so a resource changed at the origin since then is a
    /// conflict that the class's rule decides, never a silent overwrite of a `reject` class.
    /// - Returns: the number of writes queued again.
    @discardableResult
    package func recordEpochChange() async throws -> Int {
        let (requeued, counters) = try await core.pool.write { db -> (Int, EdgeStoreCounters) in
            try db.execute(
                sql: "INSERT INTO meta(key, value) VALUES ('epoch_changes', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
            let requeued = try self.outbox.requeueDone(db)
            return (requeued, try EdgeDatabase.readCounters(db))
        }
        core.committed(counters)
        try await outbox.refreshQueuedCount()
        return requeued
    }
}
