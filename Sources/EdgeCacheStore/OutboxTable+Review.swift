import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

extension OutboxTable {
    /// Entries in the given states, oldest first.
    package func list(states: Set<OutboxState>, limit: Int = 1000) async throws -> [OutboxEntry] {
        let names = states.map(\.rawValue)
        let rows = try await pool.readRows { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM outbox WHERE state IN (\(names.map { _ in "?" }.joined(separator: ","))) ORDER BY seq LIMIT ?",
                arguments: StatementArguments(names) + [limit])
        }
        return try rows.map { try decodeEntry($0) }
    }

    /// Puts an entry in review back in the queue (attempts reset). With `rebase`, its If-Match
    /// becomes `baseVersion` (nil: unconditional) — used when a person keeps the edge's side of
    /// a conflict.
    @discardableResult
    package func retry(seq: Int64, rebase: Bool = false, baseVersion: Int64? = nil) async throws -> Bool {
        try await pool.write { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM outbox WHERE seq = ? AND state = \(OutboxState.review.sql)", arguments: [seq])
            else {
                return false
            }
            try self.ring.refresh(db)
            var entry = try self.decodeEntry(row, db: db)
            if rebase { entry.item.ifMatch = baseVersion }
            try db.execute(
                sql: """
                    UPDATE outbox SET state = \(OutboxState.queued.sql), attempts = 0, next_attempt_at = 0, review_reason = NULL, blob = ?
                    WHERE seq = ?
                    """, arguments: [try self.sealItem(entry.item, keyHash: self.keyHash(entry.item.key)), seq])
            return true
        }
    }

    /// Drops a queued or review entry.
    @discardableResult
    package func discard(seq: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE outbox SET state = \(OutboxState.discarded.sql) WHERE seq = ? AND state IN \(OutboxState.unfinished)",
                arguments: [seq])
            let discarded = db.changesCount > 0
            if discarded {
                try db.execute(
                    sql: "UPDATE conflicts SET resolution = 'discarded', resolved_at = ? WHERE seq = ? AND resolution IS NULL",
                    arguments: [self.clock.nowMillis(), seq])
            }
            return discarded
        }
    }

    /// Conflicts, unresolved first unless `all`.
    package func conflicts(includeResolved: Bool = false) async throws -> [ConflictRecord] {
        let rows = try await pool.readRows { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.seq AS cseq, c.origin_version, c.origin_blob, c.created_at AS ccreated, c.resolution, o.*
                    FROM conflicts c JOIN outbox o ON o.seq = c.seq \(includeResolved ? "" : "WHERE c.resolution IS NULL")
                    ORDER BY c.seq
                    """)
        }
        return try rows.map { row in
            let entry = try decodeEntry(row)
            var origin: ResourceVersion?
            if let blob = row["origin_blob"] as Data?, let version = row["origin_version"] as Int64? {
                let rkey = ResourceBlob.key(keys, type: entry.item.type, id: entry.item.id)
                let plain = try ring.open(Array(blob), aad: Array("conflict|".utf8) + rkey + [UInt8](String(entry.seq).utf8))
                origin = try ResourceBlob.decode(plain, version: version, lastUpdated: 0, deleted: false)
            }
            return ConflictRecord(
                seq: row["cseq"], entry: entry, originVersion: origin, createdAt: row["ccreated"], resolution: row["resolution"])
        }
    }

    /// Settles a conflict: keep the origin's version (the edge's write is discarded) or the
    /// edge's (it is queued again, based on the origin's version, so it overwrites it).
    package func resolve(seq: Int64, keepEdge: Bool) async throws -> Bool {
        guard let conflict = try await conflicts().first(where: { $0.seq == seq }) else { return false }
        if keepEdge {
            guard try await retry(seq: seq, rebase: true, baseVersion: conflict.originVersion?.version) else { return false }
        } else {
            guard try await discard(seq: seq) else { return false }
        }
        // (discard marked it 'discarded'; record the person's decision instead.)
        let now = clock.nowMillis()
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE conflicts SET resolution = ?, resolved_at = ? WHERE seq = ?",
                arguments: [keepEdge ? "kept-edge" : "kept-origin", now, seq])
        }
        return true
    }

    /// Deletes done and discarded entries (and resolved conflicts) older than `cutoff` (epoch
    /// ms); their idempotency keys are forgotten at the edge with them.
    package func expire(before cutoff: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql:
                    "DELETE FROM conflicts WHERE resolution IS NOT NULL AND seq IN (SELECT seq FROM outbox WHERE state IN \(OutboxState.finished) AND created_at < ?)",
                arguments: [cutoff])
            try db.execute(sql: "DELETE FROM outbox WHERE state IN \(OutboxState.finished) AND created_at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }
}
