import EdgeCacheCore
import Foundation
import GRDB
import Synchronization

/// The origin log epoch whose data this cache holds (meta `origin_epoch`; 0: not known yet) and
/// the number of epoch changes seen (meta `epoch_changes`, kept across restarts).
extension EdgeStore {
    /// The epoch of the origin log the cache was filled from (nil: not known yet, e.g. an edge
    /// that followed an origin older than epochs).
    package var originEpoch: LogEpoch? { LogEpoch(storedValue: counters.originEpoch) }

    /// Records the origin's epoch the first time it is seen; the cache is kept.
    package func adoptOriginEpoch(_ epoch: LogEpoch) async throws {
        try await updateMeta(
            "INSERT INTO meta(key, value) VALUES ('origin_epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [epoch.storedValue])
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
        let (requeued, counters) = try await pool.write { db -> (Int, EdgeStoreCounters) in
            try db.execute(
                sql: "INSERT INTO meta(key, value) VALUES ('epoch_changes', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
            try self.ring.refresh(db)
            var requeued = 0
            for row in try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE state = \(OutboxState.done.sql) ORDER BY seq") {
                var entry = try self.decodeEntry(row, db: db)
                if let result = entry.resultVersion, result > 1 { entry.item.ifMatch = result - 1 } else { entry.item.ifMatch = nil }
                try db.execute(
                    sql: """
                        UPDATE outbox SET state = \(OutboxState.queued.sql), attempts = 0, next_attempt_at = 0, last_error = NULL, blob = ?
                        WHERE seq = ?
                        """, arguments: [try self.sealItem(entry.item, keyHash: self.keyHash(entry.item.key)), entry.seq])
                requeued += 1
            }
            return (requeued, try Self.readCounters(db))
        }
        countersCache.withLock { $0 = counters }
        try await refreshQueuedCount()
        return requeued
    }

    /// Sets the consent lane's checkpoint to `lsn` even if it is lower (a lane checkpoint the
    /// origin's log does not reach any more, e.g. after a restore or with a damaged value).
    package func resetConsentLane(to lsn: Int64) async throws {
        try await updateMeta(
            "INSERT INTO meta(key, value) VALUES ('consent_lsn', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [lsn])
    }

    private func updateMeta(_ sql: String, _ arguments: StatementArguments) async throws {
        let counters = try await pool.write { db in
            try db.execute(sql: sql, arguments: arguments)
            return try Self.readCounters(db)
        }
        countersCache.withLock { $0 = counters }
    }
}
