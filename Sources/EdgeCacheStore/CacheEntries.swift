import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// An entry served from the edge cache.
package struct CachedEntry: Sendable {
    package var resource: ResourceVersion
    /// When the edge stored this version (local epoch ms).
    package var storedAt: Int64
}

/// The edge's cached resources (`entries`, their search `terms`, and the `quarantine` of
/// entries that failed authentication), sealed under the tenant's keys and looked up by keyed
/// hashes, with the in-memory ``HotTier`` in front of reads.
///
/// Other owners that write entries inside their own transaction (the stream, the consent lane,
/// replay outcomes, eviction, a consent purge) do it through the internal helpers here on their
/// `Database` handle, so their transaction stays one.
package final class CacheEntries: Sendable {
    let core: EdgeDatabase
    /// Taken from ``EdgeDatabase`` once: the read path uses them without another indirection.
    let pool: DatabasePool
    let ring: KeyRing
    /// Plaintext of recently read entries (see ``HotTier``).
    package let hot: HotTier
    let searchIndex = SearchIndexState()

    init(core: EdgeDatabase) {
        self.core = core
        self.pool = core.pool
        self.ring = core.ring
        self.hot = core.hot
    }

    var keys: TenantKeys { ring.current }

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

    /// Searches the cached, non-deleted resources of a type: narrowed by index terms, then
    /// (when the query has clauses or a sort) decided, sorted and paged by
    /// ``SearchQuery/select(_:)`` on the unsealed candidates.
    package func search(type: String, query: SearchQuery) async throws -> SearchPage {
        let keys = self.keys
        let tkey = ResourceBlob.typeKey(keys, type: type)
        let indexCurrent = try await searchIndexCurrent()
        let result = try await pool.readRows { db -> (rows: [Row], total: Int, skip: Int) in
            let candidates = try SearchFilter.candidates(query, keys: keys, type: type, indexCurrent: indexCurrent, db: db, tenant: nil)
            guard let filter = SearchFilter(tenant: nil, tkey: Data(tkey), query: query, candidates: candidates)
            else { return ([], 0, 0) }
            let conditions = filter.conditions
            let columns = "version, last_updated, deleted, blob, rkey, tkey"
            if query.needsSelection {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(columns) FROM entries WHERE \(conditions) LIMIT ? OFFSET ?", arguments: filter.selectionArguments())
                return (rows, rows.count, 0)
            }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entries WHERE \(conditions)", arguments: filter.arguments) ?? 0
            let page = try filter.tieSafePage(db, table: "entries", select: columns, query: query)
            return (page.rows, total, page.skip)
        }
        if query.needsSelection, result.rows.count > SearchQuery.maxCandidates { throw SearchFilter.tooCostly(type) }
        var resources: [ResourceVersion] = []
        var rejected: [(rkey: Data, tkey: Data, blob: Data)] = []
        for row in result.rows {
            // The hot tier spares AES-GCM and zlib for entries read (or searched) lately; it
            // answers only for the row's exact sealed bytes (compared where the row holds them),
            // so it never outlives the row. Columns by index, in the order of `columns` above.
            let key: Data = row[4]
            let found = try row.withUnsafeData(atIndex: 3) { sealed in sealed.flatMap { hot.lookup(key, sealed: $0) } }
            if var resource = found {
                resource.lastUpdated = row[1]
                resource.deleted = row[2]
                resources.append(resource)
                continue
            }
            let sealed: Data = row[3]
            do {
                let resource = try open(row, rkey: Array(key))
                hot.remember(key, sealed: sealed, resource: resource)
                resources.append(resource)
            } catch is SealedBytesRejected {
                rejected.append((key, row[5], sealed))
            }
        }
        if !rejected.isEmpty {
            // The page would be short and its total wrong: never answer it; the caller asks the origin.
            let count = try await quarantine(rejected)
            throw CorruptEntryError(count: max(count, rejected.count))
        }
        if query.needsSelection { return query.select(resources, termsDecided: indexCurrent) }
        return SearchFilter.page(resources, skip: result.skip, query: query, total: result.total)
    }

    /// Number of cached entries (including tombstones).
    package func count() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entries") ?? 0 }
    }

    /// Whether a resource is cached (any version).
    package func contains(type: String, id: String) async throws -> Bool {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        return try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE rkey = ?", arguments: [rkey]) ?? false
        }
    }

    // MARK: Writes

    /// Stores `resource` unless an equal or newer version is already cached. Used for misses and
    /// write-through; does not move the checkpoint.
    @discardableResult
    package func put(_ resource: ResourceVersion) async throws -> Bool {
        let sealed = try sealForCache(resource)
        let now = core.clock.nowMillis()
        let stored = try await pool.write { db in
            try self.upsertIfNewer(db, resource, sealed: sealed, now: now, table: "")
        }
        if stored { try await refreshQuarantineCount() }
        return stored
    }

    /// Records that the origin confirmed the cached version of a resource (a 304 to a
    /// conditional GET): its age starts again from `at`.
    package func confirm(type: String, id: String, version: Int64, at: Int64) async throws {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE entries SET stored_at = MAX(stored_at, ?) WHERE rkey = ? AND version = ?", arguments: [at, rkey, version])
        }
    }

    // MARK: Helpers for writes made by other owners

    func sealForCache(_ r: ResourceVersion) throws -> (rkey: [UInt8], blob: [UInt8], terms: [[UInt8]]) {
        let rkey = ResourceBlob.key(keys, type: r.type, id: r.id)
        let blob = try Sealer(keys: keys).seal(ResourceBlob.encode(r), aad: Sealer.aad(lookupKey: rkey, version: r.version))
        var terms: [[UInt8]] = []
        if !r.deleted, case .object(let object)? = try? JSONParser.parse(r.json) {
            terms = SearchTerms.extract(from: object, type: r.type).map { ResourceBlob.termKey(keys, type: r.type, term: $0) }
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

    /// Inside a write: stores a sealed version unless an equal or newer one is there.
    /// - Parameters:
    ///   - prefix: `""` for the cache, `"staged_"` for a snapshot being staged.
    ///   - current: the tenant's current keys read in this transaction (a batch reads them
    ///     once); nil: read them here.
    func upsertIfNewer(
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

    /// Inside a transaction: the cached version under `rkey`, if any.
    func cachedVersion(_ db: Database, rkey: Data) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT version FROM entries WHERE rkey = ?"), arguments: [rkey])
    }

    /// Inside a transaction: whether `rkey` is cached or quarantined (a quarantined entry counts
    /// as cached: the stream repairs it).
    func isCachedOrQuarantined(_ db: Database, rkey: Data) throws -> Bool {
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE rkey = ?", arguments: [rkey]) != nil { return true }
        return try quarantinedEntries != 0
            && Bool.fetchOne(db, sql: "SELECT 1 FROM quarantine WHERE rkey = ?", arguments: [rkey]) != nil
    }

    /// Inside a transaction: the entries a search term names.
    func rkeys(_ db: Database, term: Data) throws -> [Data] {
        try Data.fetchAll(db.cachedStatement(sql: "SELECT rkey FROM terms WHERE term = ?"), arguments: [term])
    }

    /// Inside a write: deletes the entry under `rkey` (unless it is of type `keptType`) with its
    /// search terms, and forgets its plaintext. Returns the entries deleted (0 or 1).
    @discardableResult
    func remove(_ db: Database, rkey: Data, unlessType keptType: Data? = nil) throws -> Int {
        if let keptType {
            try db.cachedStatement(sql: "DELETE FROM entries WHERE rkey = ? AND tkey != ?").execute(arguments: [rkey, keptType])
        } else {
            try db.cachedStatement(sql: "DELETE FROM entries WHERE rkey = ?").execute(arguments: [rkey])
        }
        let count = db.changesCount
        if count > 0 {
            hot.forget(rkey)
            try db.cachedStatement(sql: "DELETE FROM terms WHERE rkey = ?").execute(arguments: [rkey])
        }
        return count
    }

    // MARK: Snapshot staging

    /// Inside a write: empties the staging tables.
    func clearStaging(_ db: Database) throws {
        try db.execute(sql: "DELETE FROM staged_entries; DELETE FROM staged_terms;")
    }

    /// Inside a write: replaces the cache with the staged entries (and empties the staging
    /// tables and the quarantine: every staged entry is a good copy from the origin).
    func swapInStaged(_ db: Database) throws {
        try db.execute(
            sql: """
                DELETE FROM entries; DELETE FROM terms;
                INSERT INTO entries SELECT * FROM staged_entries;
                INSERT INTO terms SELECT * FROM staged_terms;
                DELETE FROM staged_entries; DELETE FROM staged_terms; DELETE FROM quarantine;
                """)
    }
}
