import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

extension OutboxTable {
    /// The next entries to replay: for each resource only its oldest unfinished entry, and only
    /// if it is queued (not in review) and due. Unrelated resources never wait for each other.
    package func nextReplayBatch(limit: Int) async throws -> [OutboxEntry] {
        let now = clock.nowMillis()
        let rows = try await pool.readRows { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM outbox o WHERE state = \(OutboxState.queued.sql) AND next_attempt_at <= ?
                    AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.rkey = o.rkey AND p.seq < o.seq AND p.state IN \(OutboxState.unfinished))
                    ORDER BY seq LIMIT ?
                    """, arguments: [now, limit])
        }
        return try rows.map { try decodeEntry($0) }
    }

    /// Records replay outcomes in one transaction; committed versions go into the cache at once.
    package func complete(_ outcomes: [(OutboxEntry, ReplayOutcome)], maxAttempts: Int) async throws {
        let leaving = outcomes.filter { entry, outcome in
            switch outcome {
            case .committed, .review, .conflict: return entry.state == .queued
            case .retry: return entry.attempts + 1 >= maxAttempts
            case .overwrite: return false
            }
        }.count
        defer { core.queuedEstimate.withLock { $0 = max(0, $0 - leaving) } }
        let now = clock.nowMillis()
        let cacheWrites = try outcomes.compactMap { entry, outcome -> (ResourceVersion, [UInt8], [UInt8], [[UInt8]])? in
            guard case .committed(let version?) = outcome else { return nil }
            let sealed = try entries.sealForCache(version)
            return (version, sealed.rkey, sealed.blob, sealed.terms)
        }
        try await pool.write { db in
            // Sealed here, after picking up any rotation, so they never land under a retired version.
            let current = try self.ring.refresh(db)
            let conflictBlobs = try outcomes.map { entry, outcome -> Data? in
                guard case .conflict(let origin?) = outcome else { return nil }
                let rkey = ResourceBlob.key(current, type: origin.type, id: origin.id)
                return Data(
                    try Sealer(keys: current).seal(
                        ResourceBlob.encode(origin), aad: Array("conflict|".utf8) + rkey + [UInt8](String(entry.seq).utf8)))
            }
            for (index, (entry, outcome)) in outcomes.enumerated() {
                switch outcome {
                case .committed(let version):
                    try db.execute(
                        sql: "UPDATE outbox SET state = \(OutboxState.done.sql), result_version = ?, last_error = NULL WHERE seq = ?",
                        arguments: [version?.version, entry.seq])
                case .retry(let error, let retryAt):
                    if entry.attempts + 1 >= maxAttempts {
                        try db.execute(
                            sql:
                                "UPDATE outbox SET state = \(OutboxState.review.sql), attempts = attempts + 1, last_error = ?, review_reason = ? WHERE seq = ?",
                            arguments: [error, "gave up after \(entry.attempts + 1) attempts", entry.seq])
                    } else {
                        try db.execute(
                            sql: "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
                            arguments: [retryAt, error, entry.seq])
                    }
                case .review(let reason):
                    try db.execute(
                        sql:
                            "UPDATE outbox SET state = \(OutboxState.review.sql), attempts = attempts + 1, review_reason = ? WHERE seq = ?",
                        arguments: [reason, entry.seq])
                case .conflict(let origin):
                    try db.execute(
                        sql:
                            "UPDATE outbox SET state = \(OutboxState.review.sql), attempts = attempts + 1, review_reason = ? WHERE seq = ?",
                        arguments: ["conflict: the origin's version changed since this write was based on it", entry.seq])
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO conflicts(seq, rkey, origin_version, origin_blob, created_at) VALUES (?, ?, ?, ?, ?)",
                        arguments: [
                            entry.seq, Data(ResourceBlob.key(keys, type: entry.item.type, id: entry.item.id)), origin?.version,
                            conflictBlobs[index], now,
                        ])
                case .overwrite:
                    var item = entry.item
                    item.ifMatch = nil
                    try db.execute(
                        sql: "UPDATE outbox SET blob = ?, attempts = attempts + 1 WHERE seq = ?",
                        arguments: [try sealItem(item, keyHash: keyHash(item.key)), entry.seq])
                }
            }
            for (version, rkey, blob, terms) in cacheWrites {
                _ = try entries.upsertSealed(db, version, rkey: rkey, blob: blob, terms: terms, now: now)
            }
        }
    }

    /// Inside a write: queues every retained finished write (`done`) again, each based on the
    /// version it was committed over (see ``StreamPosition/recordEpochChange()``). Returns how many.
    func requeueDone(_ db: Database) throws -> Int {
        try ring.refresh(db)
        var requeued = 0
        for row in try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE state = \(OutboxState.done.sql) ORDER BY seq") {
            var entry = try decodeEntry(row, db: db)
            if let result = entry.resultVersion, result > 1 { entry.item.ifMatch = result - 1 } else { entry.item.ifMatch = nil }
            try db.execute(
                sql: """
                    UPDATE outbox SET state = \(OutboxState.queued.sql), attempts = 0, next_attempt_at = 0, last_error = NULL, blob = ?
                    WHERE seq = ?
                    """, arguments: [try sealItem(entry.item, keyHash: keyHash(entry.item.key)), entry.seq])
            requeued += 1
        }
        return requeued
    }
}
