import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// The edge's outbox: writes its clients sent, queued durably (`outbox`, sealed) until the
/// origin commits them, and the `conflicts` waiting for a person. Replay outcomes that commit a
/// version store it in the cache (through ``CacheEntries``) in the same transaction.
package final class OutboxTable: Sendable {
    let core: EdgeDatabase
    let entries: CacheEntries

    init(core: EdgeDatabase, entries: CacheEntries) {
        self.core = core
        self.entries = entries
    }

    var pool: DatabasePool { core.pool }
    var ring: KeyRing { core.ring }
    var keys: TenantKeys { core.keys }
    var clock: any WallClock { core.clock }

    static let schema = """
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
        let startCount = core.queuedEstimate.withLock { $0 }
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
                let cached = try self.entries.cachedVersion(db, rkey: Data(rkey))
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
        core.queuedEstimate.withLock { $0 += added }
        return outcomes
    }

    /// Counts queued entries again (the replayer calls this periodically).
    package func refreshQueuedCount() async throws {
        let queued = try await pool.read { db in try Self.queuedCount(db) }
        core.queuedEstimate.withLock { $0 = queued }
    }

    /// Queued entries (approximate between refreshes).
    package var queuedCount: Int { core.queuedEstimate.withLock { $0 } }

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

    /// The newest queued write of each resource of `type`, oldest first: a search at the edge
    /// shows them as a read does. The outbox holds no type in the clear, so every queued entry
    /// is unsealed (a cost paid only while writes are queued).
    package func pendingWrites(type: String) async throws -> [OutboxEntry] {
        let rows = try await pool.readRows { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outbox WHERE state = \(OutboxState.queued.sql) ORDER BY seq")
        }
        var newest: [String: OutboxEntry] = [:]
        for row in rows {
            let entry = try decodeEntry(row)
            if entry.item.type == type { newest[entry.item.id] = entry }
        }
        return newest.values.sorted { $0.seq < $1.seq }
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
    package func counts() async throws -> [OutboxState: Int] {
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

    /// Inside a write: the number of queued entries.
    static func queuedCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE state = \(OutboxState.queued.sql)") ?? 0
    }
}
