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

/// An entry served from the edge cache.
package struct CachedEntry: Sendable {
    package var resource: ResourceVersion
    /// When the edge stored this version (local epoch ms).
    package var storedAt: Int64
}

/// The edge's sealed cache on SQLite: one tenant, entries compressed and sealed, looked up by
/// keyed hashes, and the stream checkpoint committed with every batch it covers.
package final class EdgeStore: Sendable {
    let pool: DatabasePool
    let ring: KeyRing
    /// The tenant's current keys as last seen (lookup keys are stable across rotations).
    package var keys: TenantKeys { ring.current }
    package let clock: any WallClock
    let kek: KeyEncryptionKey
    let countersCache: Mutex<EdgeStoreCounters>
    /// Rows in `quarantine` (entries awaiting repair), as last counted.
    let quarantinePending = Mutex(0)
    /// Queued outbox entries, as last counted plus those enqueued since (refreshed by
    /// ``refreshQueuedCount()``, so it stays right when the CLI changes the outbox).
    let queuedEstimate = Mutex(0)
    /// Plaintext of recently read entries (see ``HotTier``).
    package let hot: HotTier

    /// Opens (creating if needed) the edge database at `path` for `tenant`.
    /// - Parameter hotBytes: the in-memory hot tier's budget (0: none).
    package init(
        path: String, tenant: String, kek: KeyEncryptionKey, clock: any WallClock, hotBytes: Int = 0
    ) throws {
        self.pool = try SQLiteFile.openPool(path: path)
        self.hot = HotTier(budget: hotBytes)
        self.clock = clock
        let now = clock.nowMillis()
        let pool = self.pool
        try Self.migrator.migrate(pool)
        let (ring, counters) = try pool.write { db in
            let tenants = try String.fetchAll(db, sql: "SELECT DISTINCT tenant FROM data_keys")
            if let other = tenants.first(where: { $0 != tenant }) {
                throw StoreError(
                    "this data_dir holds the cache of tenant '\(other)', not '\(tenant)'; give each tenant its own data_dir")
            }
            let ring = try KeyRing(db, pool: pool, tenant: tenant, kek: kek, now: now)
            return (ring, try Self.readCounters(db))
        }
        self.ring = ring
        self.kek = kek
        self.countersCache = Mutex(counters)
        let (queued, quarantined) = try pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE state = \(OutboxState.queued.sql)") ?? 0,
                try Self.quarantineCount(db)
            )
        }
        queuedEstimate.withLock { $0 = queued }
        quarantinePending.withLock { $0 = quarantined }
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

    /// The counters as last committed.
    package var counters: EdgeStoreCounters { countersCache.withLock { $0 } }

    // MARK: Reads

    /// The stored version of a resource (possibly a tombstone), if cached.
    /// - Throws: ``CorruptEntryError`` if the entry's sealed bytes failed authentication; it was
    ///   quarantined (removed), so the next read is a miss.
    package func get(type: String, id: String) async throws -> CachedEntry? {
        let rkey = ResourceBlob.key(keys, type: type, id: id)
        let row = try await pool.readRows { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT version, last_updated, deleted, blob, stored_at, tkey FROM entries WHERE rkey = ?"),
                arguments: [Data(rkey)])
        }
        guard let row else { return nil }
        let sealed: Data = row["blob"]
        let key = Data(rkey)
        if let resource = hot.lookup(key, sealed: sealed) {
            // The row holds exactly the sealed bytes the plaintext was made from; take the
            // row's own metadata all the same.
            var r = resource
            r.lastUpdated = row["last_updated"]
            r.deleted = row["deleted"]
            return CachedEntry(resource: r, storedAt: row["stored_at"])
        }
        let resource: ResourceVersion
        do {
            resource = try open(row, rkey: rkey)
        } catch is SealedBytesRejected {
            let count = try await quarantine([(key, row["tkey"], sealed)])
            throw CorruptEntryError(count: max(count, 1))
        }
        hot.remember(key, sealed: sealed, resource: resource)
        return CachedEntry(resource: resource, storedAt: row["stored_at"])
    }

    /// Opens a row (`version, last_updated, deleted, blob, …`).
    /// - Throws: ``SealedBytesRejected`` when the row's own bytes are bad (authentication,
    ///   format, decompression); a data key that cannot be loaded throws its own error.
    func open(_ row: Row, rkey: [UInt8]) throws -> ResourceVersion {
        let version: Int64 = row["version"]
        let sealed = Array(row["blob"] as Data)
        guard let keyVersion = Sealer.keyVersion(of: sealed) else { throw SealedBytesRejected() }
        let keys = try ring.keys(version: keyVersion)
        do {
            let plain = try Sealer(keys: keys).open(sealed, aad: Sealer.aad(lookupKey: rkey, version: version))
            return try ResourceBlob.decode(plain, version: version, lastUpdated: row["last_updated"], deleted: row["deleted"])
        } catch {
            throw SealedBytesRejected()
        }
    }

    /// Searches the cached, non-deleted resources of a type.
    package func search(type: String, query: SearchQuery) async throws -> SearchPage {
        let keys = self.keys
        let tkey = ResourceBlob.typeKey(keys, type: type)
        let result = try await pool.readRows { db -> (rows: [Row], total: Int) in
            var candidates: Set<Data>? = query.ids.map { Set($0.map { Data(ResourceBlob.key(keys, type: type, id: $0)) }) }
            for group in query.termGroups {
                var matches = Set<Data>()
                for term in group {
                    let termKey = Data(ResourceBlob.termKey(keys, type: type, term: term))
                    matches.formUnion(try Data.fetchAll(db, sql: "SELECT rkey FROM terms WHERE term = ?", arguments: [termKey]))
                }
                candidates = candidates.map { $0.intersection(matches) } ?? matches
            }
            var conditions = "tkey = ? AND deleted = 0"
            var arguments: StatementArguments = [Data(tkey)]
            if let from = query.updatedFrom {
                conditions += " AND last_updated >= ?"
                _ = arguments.append(contentsOf: [from])
            }
            if let before = query.updatedBefore {
                conditions += " AND last_updated < ?"
                _ = arguments.append(contentsOf: [before])
            }
            if let candidates {
                if candidates.isEmpty { return ([], 0) }
                conditions += " AND rkey IN (\(Array(repeating: "?", count: candidates.count).joined(separator: ",")))"
                _ = arguments.append(contentsOf: StatementArguments(Array(candidates)))
            }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entries WHERE \(conditions)", arguments: arguments) ?? 0
            var pageArguments = arguments
            _ = pageArguments.append(contentsOf: [query.count + 1, query.offset])
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT version, last_updated, deleted, blob, rkey, tkey FROM entries WHERE \(conditions)
                    ORDER BY last_updated, rkey LIMIT ? OFFSET ?
                    """, arguments: pageArguments)
            return (rows, total)
        }
        var resources: [ResourceVersion] = []
        var rejected: [(rkey: Data, tkey: Data, blob: Data)] = []
        for row in result.rows.prefix(query.count) {
            do {
                resources.append(try open(row, rkey: Array(row["rkey"] as Data)))
            } catch is SealedBytesRejected {
                rejected.append((row["rkey"], row["tkey"], row["blob"]))
            }
        }
        if !rejected.isEmpty {
            // The page would be short and its total wrong: never answer it; the caller asks the origin.
            let count = try await quarantine(rejected)
            throw CorruptEntryError(count: max(count, rejected.count))
        }
        return SearchPage(resources: resources, total: result.total, hasMore: result.rows.count > query.count)
    }

    /// Whether the tenant's current data key can be read from the database and opened (false
    /// after a shred, or when the key rows cannot be read).
    package func keysUsable() async -> Bool {
        (try? await pool.read { db in
            _ = try self.ring.refresh(db); return true
        }) ?? false
    }

    /// Number of cached entries (including tombstones).
    package func entryCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entries") ?? 0 }
    }

    // MARK: Writes

    /// Stores `resource` unless an equal or newer version is already cached. Used for misses and
    /// write-through; does not move the checkpoint.
    @discardableResult
    package func put(_ resource: ResourceVersion) async throws -> Bool {
        let sealed = try sealForCache(resource)
        let now = clock.nowMillis()
        let stored = try await pool.write { db in
            try self.upsertIfNewer(db, resource, sealed: sealed, now: now, table: "")
        }
        if stored { try await refreshQuarantineCount() }
        return stored
    }

    func sealForCache(_ r: ResourceVersion) throws -> (rkey: [UInt8], blob: [UInt8], terms: [[UInt8]]) {
        let rkey = ResourceBlob.key(keys, type: r.type, id: r.id)
        let blob = try Sealer(keys: keys).seal(ResourceBlob.encode(r), aad: Sealer.aad(lookupKey: rkey, version: r.version))
        var terms: [[UInt8]] = []
        if !r.deleted, case .object(let object)? = try? JSONParser.parse(r.json) {
            terms = SearchTerms.extract(from: object).map { ResourceBlob.termKey(keys, type: r.type, term: $0) }
        }
        return (rkey, blob, terms)
    }

    /// Seals a batch for the cache on every core, off the cooperative thread pool: compressing,
    /// sealing and extracting search terms is most of a stream batch's CPU, and the SQLite
    /// transaction that follows is single-threaded (docs/benchmarks.md, stream apply).
    func sealForCache(_ resources: [ResourceVersion]) async throws -> [(rkey: [UInt8], blob: [UInt8], terms: [[UInt8]])] {
        let workers = min(ProcessInfo.processInfo.activeProcessorCount, 8, resources.count / 32)
        guard workers > 1 else { return try resources.map { try sealForCache($0) } }
        typealias Sealed = (rkey: [UInt8], blob: [UInt8], terms: [[UInt8]])
        let chunk = (resources.count + workers - 1) / workers
        let parts = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[[Sealed]], any Error>) in
            DispatchQueue.global().async {
                let results = Mutex<[Int: Result<[Sealed], any Error>]>([:])
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let range = (w * chunk)..<min(resources.count, (w + 1) * chunk)
                    let result = Result { try resources[range].map { try self.sealForCache($0) } }
                    results.withLock { $0[w] = result }
                }
                continuation.resume(with: Result { try results.withLock { r in try (0..<workers).map { try r[$0]!.get() } } })
            }
        }
        return parts.flatMap { $0 }
    }

    func upsertSealed(
        _ db: Database, _ r: ResourceVersion, rkey: [UInt8], blob: [UInt8], terms: [[UInt8]], now: Int64
    ) throws
        -> Bool
    {
        try upsertIfNewer(db, r, sealed: (rkey, blob, terms), now: now, table: "")
    }

    /// - Parameter current: the tenant's current keys read in this transaction (a batch reads
    ///   them once); nil: read them here.
    private func upsertIfNewer(
        _ db: Database, _ r: ResourceVersion, sealed: (rkey: [UInt8], blob: [UInt8], terms: [[UInt8]]), now: Int64,
        table prefix: String, current: TenantKeys? = nil
    ) throws -> Bool {
        let rkey = Data(sealed.rkey)
        // A rotation committed by another process since this blob was sealed: seal it again
        // under the current version (only the first write after a rotation pays for this).
        let current = try current ?? ring.refresh(db)
        var sealed = sealed
        if Sealer.keyVersion(of: sealed.blob) != current.version {
            sealed.blob = try Sealer(keys: current).seal(
                ResourceBlob.encode(r), aad: Sealer.aad(lookupKey: sealed.rkey, version: r.version))
        }
        let existing = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT version FROM \(prefix)entries WHERE rkey = ?"), arguments: [rkey])
        if let existing, existing >= r.version { return false }
        try db.cachedStatement(
            sql: """
                INSERT OR REPLACE INTO \(prefix)entries(rkey, tkey, version, last_updated, deleted, stored_at, blob)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            rkey, Data(ResourceBlob.typeKey(keys, type: r.type)), r.version, r.lastUpdated, r.deleted, now,
            Data(sealed.blob),
        ])
        if existing != nil {
            try db.cachedStatement(sql: "DELETE FROM \(prefix)terms WHERE rkey = ?").execute(arguments: [rkey])
        }
        if prefix.isEmpty { try clearQuarantine(db, rkey: rkey) }
        for term in sealed.terms {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO \(prefix)terms(term, rkey) VALUES (?, ?)")
                .execute(arguments: [Data(term), rkey])
        }
        return true
    }

    /// Whether a resource is cached (any version).
    package func contains(type: String, id: String) async throws -> Bool {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        return try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE rkey = ?", arguments: [rkey]) ?? false
        }
    }

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
        let sealed = try await sealForCache(changes.map(\.resource))
        let now = clock.nowMillis()
        // The bug `tools/drill --inject checkpoint-apart` shows the drills catch: the checkpoint
        // moves in its own transaction, 200 ms before the batch it covers. Debug builds only.
        let apart = DrillFault.checkpointApart.isActive
        var early: Int64?
        if apart {
            early = try await pool.write { db in
                let current = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'checkpoint'") ?? 0
                try db.execute(sql: "UPDATE meta SET value = max(value, ?) WHERE key = 'checkpoint'", arguments: [checkpoint])
                return current
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let before = early
        let counters = try await pool.write { db -> EdgeStoreCounters in
            let current = try before ?? Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'checkpoint'") ?? 0
            let keysNow = try self.ring.refresh(db)
            var applied: Int64 = 0
            var skipped: Int64 = 0
            for (change, s) in zip(changes, sealed) {
                if change.lsn <= current {
                    skipped += 1
                    continue
                }
                // A quarantined entry counts as cached: the stream repairs it.
                if isResident(change.resource.type),
                    try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE rkey = ?", arguments: [Data(s.rkey)]) == nil,
                    try self.quarantinedEntries == 0
                        || Bool.fetchOne(db, sql: "SELECT 1 FROM quarantine WHERE rkey = ?", arguments: [Data(s.rkey)]) == nil
                {
                    continue
                }
                if try self.upsertIfNewer(db, change.resource, sealed: s, now: now, table: "", current: keysNow) {
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
            return try Self.readCounters(db)
        }
        countersCache.withLock { $0 = counters }
        try await refreshQuarantineCount()
        return counters
    }

    // MARK: Bootstrap from a snapshot

    /// Empties the staging tables before a snapshot download.
    package func beginSnapshot() async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM staged_entries; DELETE FROM staged_terms;")
        }
    }

    /// Adds a page of snapshot resources to the staging tables (not visible to reads).
    package func stageSnapshot(_ resources: [ResourceVersion]) async throws {
        let sealed = try await sealForCache(resources)
        let now = clock.nowMillis()
        try await pool.write { db in
            let current = try self.ring.refresh(db)
            for (r, s) in zip(resources, sealed) {
                _ = try self.upsertIfNewer(db, r, sealed: s, now: now, table: "staged_", current: current)
            }
        }
    }

    /// Replaces the cache with the staged snapshot and sets the checkpoint to `lsn`, atomically:
    /// readers see either the old cache or the new one, never a mix. The consent lane's
    /// checkpoint is set to `lsn` too (the lane re-delivers any newer consent the swap replaced),
    /// and `epoch`, when the origin sent one, is recorded as the epoch the cache now holds.
    package func finishSnapshot(lsn: Int64, epoch: LogEpoch? = nil) async throws {
        let counters = try await pool.write { db -> EdgeStoreCounters in
            try db.execute(
                sql: """
                    DELETE FROM entries; DELETE FROM terms;
                    INSERT INTO entries SELECT * FROM staged_entries;
                    INSERT INTO terms SELECT * FROM staged_terms;
                    DELETE FROM staged_entries; DELETE FROM staged_terms; DELETE FROM quarantine;
                    """)
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'checkpoint'", arguments: [lsn])
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'bootstraps'")
            try db.execute(
                sql: "INSERT INTO meta(key, value) VALUES ('consent_lsn', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                arguments: [lsn])
            if let epoch {
                try db.execute(
                    sql: "INSERT INTO meta(key, value) VALUES ('origin_epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    arguments: [epoch.storedValue])
            }
            return try Self.readCounters(db)
        }
        countersCache.withLock { $0 = counters }
        quarantinePending.withLock { $0 = 0 }
    }
}
