import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// The state of an outbox entry.
package enum OutboxState: String, Sendable, CaseIterable {
    /// Waiting to be replayed to the origin.
    case queued
    /// Set aside for a person: a conflict, a rejection, or too many failed attempts.
    case review
    /// Committed at the origin.
    case done
    /// Dropped by an operator (or by resolving a conflict in the origin's favour).
    case discarded

    /// The state as an SQL literal (`'queued'`): SQL never spells a state itself.
    var sql: String { "'\(rawValue)'" }
    /// `('queued', 'review')`: waiting for the origin or for a person.
    static let unfinished = "(\(OutboxState.queued.sql), \(OutboxState.review.sql))"
    /// `('done', 'discarded')`: nothing more will happen to it.
    static let finished = "(\(OutboxState.done.sql), \(OutboxState.discarded.sql))"
}

/// One queued write.
package struct OutboxEntry: Sendable {
    package var seq: Int64
    package var state: OutboxState
    package var attempts: Int
    package var nextAttemptAt: Int64
    /// The version shown to readers while the write is pending.
    package var projectedVersion: Int64
    package var createdAt: Int64
    package var lastError: String?
    package var reviewReason: String?
    /// The origin's version once committed.
    package var resultVersion: Int64?
    package var item: ReplayItem
}

/// A write to enqueue, as the edge's client sent it.
package struct EnqueueRequest: Sendable {
    package var item: ReplayItem
    package var fingerprint: [UInt8]

    package init(item: ReplayItem, fingerprint: [UInt8]) {
        self.item = item
        self.fingerprint = fingerprint
    }
}

/// An enqueue request with its keyed hashes computed and its payload sealed.
package struct PreparedEnqueue: Sendable {
    package let request: EnqueueRequest
    let keyHash: [UInt8]
    let rkey: [UInt8]
    let fingerprint: Data
    let blob: Data
}

/// What enqueueing did.
package enum EnqueueOutcome: Sendable {
    /// Durable in the outbox (new), or already there under the same key and request.
    case queued(OutboxEntry, duplicate: Bool)
    /// The key was used for a different request.
    case keyReused
    /// The outbox is full.
    case full
}

/// A conflict waiting for a person: the edge's write and the origin's version.
package struct ConflictRecord: Sendable {
    package var seq: Int64
    package var entry: OutboxEntry
    /// The origin's current version when the conflict was found (nil if it was deleted/unknown).
    package var originVersion: ResourceVersion?
    package var createdAt: Int64
    package var resolution: String?
}

/// What replaying an entry produced.
package enum ReplayOutcome: Sendable {
    /// Committed (or already committed under its key): the origin's version.
    case committed(ResourceVersion?)
    /// Retriable failure (5xx, 429): try again after `retryAt`, counting an attempt.
    case retry(error: String, retryAt: Int64)
    /// Refused for good, or too many attempts: set aside for review.
    case review(reason: String)
    /// The base version is no longer current and the class's rule is `reject`.
    case conflict(origin: ResourceVersion?)
    /// The base version is no longer current and the class allows last-writer-wins: send again
    /// without If-Match.
    case overwrite
}

extension EdgeStore {
    static let outboxSchema = """
        CREATE TABLE IF NOT EXISTS outbox(
            seq INTEGER PRIMARY KEY AUTOINCREMENT, rkey BLOB NOT NULL, key_hash BLOB NOT NULL UNIQUE,
            fingerprint BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0, projected_version INTEGER NOT NULL,
            created_at INTEGER NOT NULL, last_error TEXT, review_reason TEXT, result_version INTEGER,
            blob BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox(state, seq);
        CREATE INDEX IF NOT EXISTS outbox_by_resource ON outbox(rkey, seq);
        CREATE TABLE IF NOT EXISTS conflicts(
            seq INTEGER PRIMARY KEY, rkey BLOB NOT NULL, origin_version INTEGER, origin_blob BLOB,
            created_at INTEGER NOT NULL, resolution TEXT, resolved_at INTEGER);
        """

    private func outboxAAD(_ keyHash: [UInt8]) -> [UInt8] { Array("outbox|".utf8) + keyHash }

    func keyHash(_ key: String) -> [UInt8] { keys.lookupKey("idempotency|\(key)") }

    func sealItem(_ item: ReplayItem, keyHash: [UInt8]) throws -> Data {
        var plain = ReplayBatchCodec.encode([item])
        if item.method == .delete { plain.append(0x0A) }
        return Data(try Sealer(keys: keys).seal(plain, aad: outboxAAD(keyHash)))
    }

    func decodeEntry(_ row: Row, db: Database? = nil) throws -> OutboxEntry {
        let keyHash = Array(row["key_hash"] as Data)
        let plain = try ring.open(Array(row["blob"] as Data), aad: outboxAAD(keyHash), db: db)
        let item = try ReplayBatchCodec.decode(plain).first.orThrow(StoreError("corrupt outbox entry"))
        return OutboxEntry(
            seq: row["seq"], state: OutboxState(rawValue: row["state"]) ?? .review, attempts: row["attempts"],
            nextAttemptAt: row["next_attempt_at"], projectedVersion: row["projected_version"], createdAt: row["created_at"],
            lastError: row["last_error"], reviewReason: row["review_reason"], resultVersion: row["result_version"], item: item)
    }

    /// Does the CPU work of enqueueing (keyed hashes, sealing) outside the serial commit path, so
    /// concurrent writers do it in parallel before they join a group commit.
    package func prepare(_ request: EnqueueRequest) throws -> PreparedEnqueue {
        let keyHash = keyHash(request.item.key)
        let fingerprint = HMACSHA256.mac(key: keys.lookupKey("fingerprint"), data: request.fingerprint)
        let rkey = ResourceBlob.key(keys, type: request.item.type, id: request.item.id)
        return PreparedEnqueue(
            request: request, keyHash: keyHash, rkey: rkey, fingerprint: Data(fingerprint),
            blob: try sealItem(request.item, keyHash: keyHash))
    }

    /// Enqueues writes durably in one transaction. A key already present answers with its entry
    /// (same request) or `.keyReused` (different request).
    package func enqueue(_ requests: [EnqueueRequest], maxQueued: Int) async throws -> [EnqueueOutcome] {
        try await enqueue(prepared: requests.map(prepare), maxQueued: maxQueued)
    }

    /// Enqueues prepared writes durably in one transaction (the caller's group commit).
    package func enqueue(prepared items: [PreparedEnqueue], maxQueued: Int) async throws -> [EnqueueOutcome] {
        if DrillFault.ackBeforeDurable.isActive { return try await enqueueBeforeDurable(items, maxQueued: maxQueued) }
        return try await enqueueDurably(items, maxQueued: maxQueued)
    }

    /// The bug `tools/drill --inject ack-before-durable` shows the drills catch: answers with
    /// the entries it will write, and writes them 300 ms later. Debug builds only.
    private func enqueueBeforeDurable(_ items: [PreparedEnqueue], maxQueued: Int) async throws -> [EnqueueOutcome] {
        let next = try await pool.read { db in
            (try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") ?? 0) + 1
        }
        let now = clock.nowMillis()
        let outcomes = items.enumerated().map { index, item in
            EnqueueOutcome.queued(
                OutboxEntry(
                    seq: next + Int64(index), state: .queued, attempts: 0, nextAttemptAt: 0, projectedVersion: 1, createdAt: now,
                    lastError: nil, reviewReason: nil, resultVersion: nil, item: item.request.item),
                duplicate: false)
        }
        Task.detached {
            try? await Task.sleep(for: .milliseconds(300))
            _ = try? await self.enqueueDurably(items, maxQueued: maxQueued)
        }
        return outcomes
    }

    private func enqueueDurably(_ items: [PreparedEnqueue], maxQueued: Int) async throws -> [EnqueueOutcome] {
        let now = clock.nowMillis()
        let prepared = items.map { ($0.request, $0.keyHash, $0.rkey, $0.fingerprint, $0.blob) }
        let startCount = queuedEstimate.withLock { $0 }
        let outcomes = try await pool.write { db in
            // A rotation committed elsewhere since these were prepared: seal them again now, so no
            // entry lands under a version `keys rotate` may be about to retire.
            let current = try self.ring.refresh(db)
            var queued = startCount
            var outcomes: [EnqueueOutcome] = []
            for (request, keyHash, rkey, fingerprint, preparedBlob) in prepared {
                var blob = preparedBlob
                if Sealer.keyVersion(of: blob) != current.version { blob = try self.sealItem(request.item, keyHash: keyHash) }
                if let existing = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM outbox WHERE key_hash = ?"), arguments: [Data(keyHash)])
                {
                    if (existing["fingerprint"] as Data) != fingerprint {
                        outcomes.append(.keyReused)
                    } else {
                        outcomes.append(.queued(try self.decodeEntry(existing, db: db), duplicate: true))
                    }
                    continue
                }
                if queued >= maxQueued {
                    outcomes.append(.full)
                    continue
                }
                // The version readers see while pending: one past the newest queued or cached version.
                let lastQueued = try Int64.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT MAX(projected_version) FROM outbox WHERE rkey = ? AND state IN \(OutboxState.unfinished)"),
                    arguments: [Data(rkey)])
                let cached = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT version FROM entries WHERE rkey = ?"), arguments: [Data(rkey)])
                let projected = (lastQueued ?? cached ?? 0) + 1
                try db.cachedStatement(
                    sql: """
                        INSERT INTO outbox(rkey, key_hash, fingerprint, state, projected_version, created_at, blob)
                        VALUES (?, ?, ?, \(OutboxState.queued.sql), ?, ?, ?)
                        """
                ).execute(arguments: [Data(rkey), Data(keyHash), fingerprint, projected, now, blob])
                queued += 1
                outcomes.append(
                    .queued(
                        OutboxEntry(
                            seq: db.lastInsertedRowID, state: .queued, attempts: 0, nextAttemptAt: 0, projectedVersion: projected,
                            createdAt: now, lastError: nil, reviewReason: nil, resultVersion: nil, item: request.item),
                        duplicate: false))
            }
            return outcomes
        }
        let added = outcomes.filter { if case .queued(_, false) = $0 { return true } else { return false } }.count
        queuedEstimate.withLock { $0 += added }
        return outcomes
    }

    /// Counts queued entries again (the replayer calls this periodically).
    package func refreshQueuedCount() async throws {
        let queued = try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE state = \(OutboxState.queued.sql)") ?? 0
        }
        queuedEstimate.withLock { $0 = queued }
    }

    /// Queued entries (approximate between refreshes).
    package var queuedCount: Int { queuedEstimate.withLock { $0 } }

    /// Deletes done and discarded entries (and resolved conflicts) older than `cutoff` (epoch
    /// ms); their idempotency keys are forgotten at the edge with them.
    package func expireOutbox(before cutoff: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql:
                    "DELETE FROM conflicts WHERE resolution IS NOT NULL AND seq IN (SELECT seq FROM outbox WHERE state IN \(OutboxState.finished) AND created_at < ?)",
                arguments: [cutoff])
            try db.execute(sql: "DELETE FROM outbox WHERE state IN \(OutboxState.finished) AND created_at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    /// The newest write still waiting (queued or in review) for a resource.
    package func pendingWrite(type: String, id: String) async throws -> OutboxEntry? {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        let row = try await pool.readRows { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM outbox WHERE rkey = ? AND state = \(OutboxState.queued.sql) ORDER BY seq DESC LIMIT 1",
                arguments: [rkey])
        }
        return try row.map { try decodeEntry($0) }
    }

    /// Whether any write for the resource is queued or in review (new writes then queue behind it).
    package func hasUnfinishedWrites(type: String, id: String) async throws -> Bool {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        return try await pool.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM outbox WHERE rkey = ? AND state IN \(OutboxState.unfinished) LIMIT 1", arguments: [rkey])
                ?? false
        }
    }

    /// Whether an older write for the same resource is still queued or in review.
    package func hasEarlierUnfinishedWrites(_ entry: OutboxEntry) async throws -> Bool {
        let rkey = Data(ResourceBlob.key(keys, type: entry.item.type, id: entry.item.id))
        return try await pool.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM outbox WHERE rkey = ? AND seq < ? AND state IN \(OutboxState.unfinished) LIMIT 1",
                arguments: [rkey, entry.seq]) ?? false
        }
    }

    /// Counts by state.
    package func outboxCounts() async throws -> [OutboxState: Int] {
        try await pool.read { db in
            var counts: [OutboxState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") {
                if let state = OutboxState(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Age (ms) of the oldest queued entry, if any.
    package func oldestQueuedAt() async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(created_at) FROM outbox WHERE state = \(OutboxState.queued.sql)")
        }
    }

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
        defer { queuedEstimate.withLock { $0 = max(0, $0 - leaving) } }
        let now = clock.nowMillis()
        let cacheWrites = try outcomes.compactMap { entry, outcome -> (ResourceVersion, [UInt8], [UInt8], [[UInt8]])? in
            guard case .committed(let version?) = outcome else { return nil }
            let sealed = try sealForCache(version)
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
                _ = try upsertSealed(db, version, rkey: rkey, blob: blob, terms: terms, now: now)
            }
        }
    }

    /// Entries in the given states, oldest first.
    package func listOutbox(states: Set<OutboxState>, limit: Int = 1000) async throws -> [OutboxEntry] {
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
    package func retryOutbox(seq: Int64, rebase: Bool = false, baseVersion: Int64? = nil) async throws -> Bool {
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
    package func discardOutbox(seq: Int64) async throws -> Bool {
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
    package func resolveConflict(seq: Int64, keepEdge: Bool) async throws -> Bool {
        guard let conflict = try await conflicts().first(where: { $0.seq == seq }) else { return false }
        if keepEdge {
            guard try await retryOutbox(seq: seq, rebase: true, baseVersion: conflict.originVersion?.version) else { return false }
        } else {
            guard try await discardOutbox(seq: seq) else { return false }
        }
        // (discardOutbox marked it 'discarded'; record the person's decision instead.)
        let now = clock.nowMillis()
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE conflicts SET resolution = ?, resolved_at = ? WHERE seq = ?",
                arguments: [keepEdge ? "kept-edge" : "kept-origin", now, seq])
        }
        return true
    }
}

extension Optional {
    func orThrow(_ error: @autoclosure () -> any Error) throws -> Wrapped {
        guard let self else { throw error() }
        return self
    }
}
