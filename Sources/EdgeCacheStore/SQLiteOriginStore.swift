import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// The origin store on SQLite (WAL, `synchronous=FULL`, one writer).
///
/// Resource bodies are sealed per tenant; ids and index terms are stored only as keyed hashes.
/// Every write commits the history row, the current-version row, the index terms and the
/// change-log row (its LSN) in one transaction.
package final class SQLiteOriginStore: OriginStore {
    private let pool: DatabasePool
    private let kek: KeyEncryptionKey
    private let clock: any WallClock
    private let rings = Mutex<[String: KeyRing]>([:])
    let searchIndex = SearchIndexState()
    private let head = Mutex<Int64>(0)
    /// Each tenant's head (the LSN of its newest change); see ``tenantHeadLSN(_:)``.
    private let tenantHeads = Mutex<[String: Int64]>([:])
    /// The change log's epoch (meta `log_epoch`), made with the store and by ``startNewEpoch(path:)``.
    package let logEpoch: LogEpoch

    /// Opens (creating if needed) the origin database at `path`.
    package init(path: String, kek: KeyEncryptionKey, clock: any WallClock) throws {
        self.pool = try SQLiteFile.openPool(path: path)
        self.kek = kek
        self.clock = clock
        try Self.migrator.migrate(pool)
        // A wrong KEK fails here, at start, not on a tenant's first request.
        try pool.read { db in
            if let row = try Row.fetchOne(db, sql: "SELECT tenant, version, wrapped FROM data_keys LIMIT 1") {
                _ = try kek.unwrap(Array(row["wrapped"] as Data), tenant: row["tenant"], version: UInt32(row["version"] as Int64))
            }
        }
        // A store made before epochs existed gets one now, once: its edges adopt it without a bootstrap.
        let stored = try pool.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO meta(key, value) VALUES ('log_epoch', ?)", arguments: [LogEpoch.random().storedValue])
            return try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_epoch'") ?? 0
        }
        guard let epoch = LogEpoch(storedValue: stored) else { throw StoreError("the store's log epoch is unreadable") }
        logEpoch = epoch
        let current = try pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'changes'") ?? 0
        }
        head.withLock { $0 = current }
        let heads = try pool.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT tenant FROM data_keys").map { ($0, try Self.tenantHead(db, tenant: $0)) }
        }
        tenantHeads.withLock { $0 = Dictionary(heads, uniquingKeysWith: max) }
    }

    package var headLSN: Int64 { head.withLock { $0 } }

    package func tenantHeadLSN(_ tenant: String) -> Int64 { tenantHeads.withLock { $0[tenant] ?? 0 } }

    /// Inside a transaction: the LSN of the tenant's newest change, or of its newest compacted one.
    private static func tenantHead(_ db: Database, tenant: String) throws -> Int64 {
        max(
            try Int64.fetchOne(db, sql: "SELECT MAX(lsn) FROM changes WHERE tenant = ?", arguments: [tenant]) ?? 0,
            try tenantFloor(db, tenant: tenant))
    }

    /// Inside a transaction: the newest change of the tenant that compaction removed (0: none).
    private static func tenantFloor(_ db: Database, tenant: String) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT lsn FROM tenant_log_floor WHERE tenant = ?", arguments: [tenant]) ?? 0
    }

    private func advance(tenant: String, to lsn: Int64) {
        guard lsn > 0 else { return }
        head.withLock { $0 = max($0, lsn) }
        tenantHeads.withLock { $0[tenant] = max($0[tenant] ?? 0, lsn) }
    }

    /// The tenant's key ring, created with its first data key on first use.
    private func ring(_ db: Database, tenant: String) throws -> KeyRing {
        if let cached = rings.withLock({ $0[tenant] }) { return cached }
        let ring = try KeyRing(db, pool: pool, tenant: tenant, kek: kek, now: clock.nowMillis())
        return rings.withLock { rings in
            if let existing = rings[tenant] { return existing }
            rings[tenant] = ring
            return ring
        }
    }

    private func ringForRead(tenant: String) async throws -> KeyRing {
        if let cached = rings.withLock({ $0[tenant] }) { return cached }
        return try await pool.write { db in try self.ring(db, tenant: tenant) }
    }

    /// Inside a write transaction: the tenant's current keys, after picking up any rotation or
    /// shred another process committed.
    private func keys(_ db: Database, tenant: String) throws -> TenantKeys {
        try ring(db, tenant: tenant).refresh(db)
    }

    /// The tenant's keys for lookups (index key; stable across rotations).
    private func keysForRead(tenant: String) async throws -> TenantKeys {
        try await ringForRead(tenant: tenant).current
    }

    /// Key rotation, re-sealing and shredding on this store's file.
    package var keyMaintenance: KeyMaintenance {
        KeyMaintenance(
            pool: pool, kek: kek,
            columns: [
                SealedColumn(
                    table: "history", column: "blob", keyColumns: ["rkey", "version"], tenantColumn: "tenant",
                    aad: { row in Sealer.aad(lookupKey: Array(row["rkey"] as Data), version: row["version"]) })
            ],
            shredRows: { db, tenant in
                for table in ["history", "resources", "terms", "changes", "idempotency"] {
                    try db.execute(sql: "DELETE FROM \(table) WHERE tenant = ?", arguments: [tenant])
                }
            },
            ring: { tenant in try self.pool.write { db in try self.ring(db, tenant: tenant) } },
            forget: { tenant, error in self.rings.withLock { $0[tenant] }?.forget(error) }, clock: clock)
    }

    // MARK: Reads

    package func read(tenant: String, type: String, id: String) async throws -> ResourceVersion? {
        let keys = try await keysForRead(tenant: tenant)
        let rkey = ResourceBlob.key(keys, type: type, id: id)
        let row = try await pool.readRows { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT h.version, h.last_updated, h.deleted, h.blob FROM resources r
                    JOIN history h ON h.tenant = r.tenant AND h.rkey = r.rkey AND h.version = r.version
                    WHERE r.tenant = ? AND r.rkey = ?
                    """, arguments: [tenant, Data(rkey)])
        }
        guard let row else { return nil }
        return try open(row, keys: keys, rkey: rkey)
    }

    package func vread(tenant: String, type: String, id: String, version: Int64) async throws -> ResourceVersion? {
        let keys = try await keysForRead(tenant: tenant)
        let rkey = ResourceBlob.key(keys, type: type, id: id)
        let row = try await pool.readRows { db in
            try Row.fetchOne(
                db, sql: "SELECT version, last_updated, deleted, blob FROM history WHERE tenant = ? AND rkey = ? AND version = ?",
                arguments: [tenant, Data(rkey), version])
        }
        guard let row else { return nil }
        return try open(row, keys: keys, rkey: rkey)
    }

    package func history(tenant: String, type: String, id: String) async throws -> [ResourceVersion] {
        let keys = try await keysForRead(tenant: tenant)
        let rkey = ResourceBlob.key(keys, type: type, id: id)
        let rows = try await pool.readRows { db in
            try Row.fetchAll(
                db,
                sql: "SELECT version, last_updated, deleted, blob FROM history WHERE tenant = ? AND rkey = ? ORDER BY version DESC",
                arguments: [tenant, Data(rkey)])
        }
        return try rows.map { try open($0, keys: keys, rkey: rkey) }
    }

    /// The pool, for the search re-index (`SQLiteOriginStore+Reindex.swift`).
    var indexPool: DatabasePool { pool }

    /// The tenant's keys, for the search re-index.
    func keysForSearchIndex(tenant: String) async throws -> TenantKeys { try await keysForRead(tenant: tenant) }

    /// Opens a `(version, last_updated, deleted, blob)` row, for the search re-index.
    func openForSearchIndex(_ row: Row, keys: TenantKeys, rkey: [UInt8], db: Database) throws -> ResourceVersion {
        try open(row, keys: keys, rkey: rkey, db: db)
    }

    /// Opens a `(version, last_updated, deleted, blob)` row. Never inlined: inlined into this
    /// type's async methods, the Swift 6.3.1 release build crashes (LLVM, splitting coroutines).
    @inline(never)
    private func open(_ row: Row, keys: TenantKeys, rkey: [UInt8], db: Database? = nil) throws -> ResourceVersion {
        let version: Int64 = row["version"]
        let sealed = Array(row["blob"] as Data)
        let ring = try rings.withLock { $0[keys.tenant] }.orThrow(StoreError("no key ring for tenant \(keys.tenant)"))
        let plain = try ring.open(sealed, aad: Sealer.aad(lookupKey: rkey, version: version), db: db)
        return try ResourceBlob.decode(plain, version: version, lastUpdated: row["last_updated"], deleted: row["deleted"])
    }

    /// Searches a tenant's current resources of a type: narrowed by index terms, then (when the
    /// query has clauses or a sort) decided, sorted and paged by ``SearchQuery/select(_:)``.
    package func search(tenant: String, type: String, query: SearchQuery) async throws -> SearchPage {
        let keys = try await keysForRead(tenant: tenant)
        let tkey = ResourceBlob.typeKey(keys, type: type)
        let indexCurrent = try await searchIndexCurrent()
        let page = try await pool.readRows { db -> (rows: [Row], total: Int, skip: Int) in
            let candidates = try SearchFilter.candidates(query, keys: keys, type: type, indexCurrent: indexCurrent, db: db, tenant: tenant)
            guard
                let filter = SearchFilter(tenant: tenant, tkey: Data(tkey), prefix: "r.", query: query, candidates: candidates)
            else { return ([], 0, 0) }
            let conditions = filter.conditions
            let table = "resources r JOIN history h ON h.tenant = r.tenant AND h.rkey = r.rkey AND h.version = r.version"
            let columns = "h.version, h.last_updated, h.deleted, h.blob, r.rkey"
            if query.needsSelection {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(columns) FROM \(table) WHERE \(conditions) LIMIT ? OFFSET ?", arguments: filter.selectionArguments())
                return (rows, rows.count, 0)
            }
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM resources r WHERE \(conditions)", arguments: filter.arguments) ?? 0
            let window = try filter.tieSafePage(db, table: table, select: columns, prefix: "r.", query: query)
            return (window.rows, total, window.skip)
        }
        if query.needsSelection, page.rows.count > SearchQuery.maxCandidates { throw SearchFilter.tooCostly(type) }
        let resources = try page.rows.map { row in try open(row, keys: keys, rkey: Array(row["rkey"] as Data)) }
        if query.needsSelection { return query.select(resources, termsDecided: indexCurrent) }
        return SearchFilter.page(resources, skip: page.skip, query: query, total: page.total)
    }

    // MARK: Writes

    package func write(
        tenant: String, _ operation: WriteOperation, idempotency: IdempotencyClaim?
    ) async throws
        -> WriteResult
    {
        let result = try await pool.write { db -> WriteResult in
            // Stamped once the writer holds the lock: lastUpdated is as close to the commit as it can be.
            try self.apply(db, tenant: tenant, operation, claim: idempotency, now: self.clock.nowMillis())
        }
        advance(tenant: tenant, to: result.lsn)
        return result
    }

    package func writeBatch(tenant: String, _ writes: [BatchWrite]) async throws -> [Result<WriteResult, FHIRError>] {
        let results = try await pool.write { db -> [Result<WriteResult, FHIRError>] in
            let now = self.clock.nowMillis()
            var results: [Result<WriteResult, FHIRError>] = []
            results.reserveCapacity(writes.count)
            for write in writes {
                var outcome: Result<WriteResult, FHIRError> = .failure(FHIRError(status: 500, code: "exception", "not applied"))
                try db.inSavepoint {
                    do {
                        outcome = .success(try self.apply(db, tenant: tenant, write.operation, claim: write.claim, now: now))
                        return .commit
                    } catch let error as FHIRError {
                        outcome = .failure(error)
                        return .rollback
                    }
                }
                results.append(outcome)
            }
            return results
        }
        let maxLSN = results.compactMap { try? $0.get().lsn }.max() ?? 0
        advance(tenant: tenant, to: maxLSN)
        return results
    }

    /// One write inside an open transaction.
    private func apply(
        _ db: Database, tenant: String, _ operation: WriteOperation, claim: IdempotencyClaim?, now: Int64
    )
        throws -> WriteResult
    {
        let keys = try self.keys(db, tenant: tenant)
        var claimKey: Data?
        if let claim {
            let keyHash = Data(keys.lookupKey("idempotency|\(claim.key)"))
            claimKey = keyHash
            let fingerprint = Data(HMACSHA256.mac(key: keys.lookupKey("fingerprint"), data: claim.fingerprint))
            if let record = try Row.fetchOne(
                db, sql: "SELECT fingerprint, status, rkey, version FROM idempotency WHERE tenant = ? AND key_hash = ?",
                arguments: [tenant, keyHash])
            {
                guard (record[0] as Data) == fingerprint else {
                    throw FHIRError(
                        status: 422, code: "business-rule",
                        "This Idempotency-Key was already used for a different request; use a new key for a new request")
                }
                let status: Int = record[1]
                let version: Int64 = record[3]
                var stored: ResourceVersion?
                if version > 0,
                    let row = try Row.fetchOne(
                        db, sql: "SELECT version, last_updated, deleted, blob FROM history WHERE tenant = ? AND rkey = ? AND version = ?",
                        arguments: [tenant, record[2] as Data, version])
                {
                    stored = try open(row, keys: keys, rkey: Array(record[2] as Data), db: db)
                }
                return WriteResult(version: stored, created: status == 201, lsn: 0, replayed: true)
            }
        }
        let type: String
        let id: String
        let ifMatch: Int64?
        var resource: JSONObject?
        switch operation {
        case .create(let t, let r):
            type = t
            id = UUID().uuidString.lowercased()
            ifMatch = nil
            resource = r
        case .update(let t, let i, let r, let m):
            (type, id, ifMatch, resource) = (t, i, m, r)
        case .delete(let t, let i, let m):
            (type, id, ifMatch, resource) = (t, i, m, nil)
        }
        let rkey = ResourceBlob.key(keys, type: type, id: id)
        let current = try Row.fetchOne(
            db, sql: "SELECT version, deleted FROM resources WHERE tenant = ? AND rkey = ?",
            arguments: [tenant, Data(rkey)])
        let currentVersion: Int64 = current?[0] ?? 0
        let currentlyDeleted: Bool = current?[1] ?? true
        if let ifMatch, ifMatch != currentVersion || currentlyDeleted {
            throw FHIRError.preconditionFailed(
                "If-Match names version \(ifMatch) but the current version is \(currentlyDeleted ? "none" : String(currentVersion))")
        }
        var result = WriteResult(version: nil, created: false, lsn: 0)
        if resource != nil || !currentlyDeleted {
            let version = currentVersion + 1
            let json = resource.map { FHIRResource.stamp($0, id: id, version: version, lastUpdated: now) } ?? []
            let stored = ResourceVersion(
                type: type, id: id, version: version, lastUpdated: now, deleted: resource == nil, json: json)
            let sealed = try Sealer(keys: keys).seal(
                ResourceBlob.encode(stored), aad: Sealer.aad(lookupKey: rkey, version: version))
            try db.cachedStatement(
                sql: "INSERT INTO history(tenant, rkey, version, last_updated, deleted, blob) VALUES (?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [tenant, Data(rkey), version, now, stored.deleted, Data(sealed)])
            try db.cachedStatement(
                sql: """
                    INSERT INTO resources(tenant, rkey, tkey, version, last_updated, deleted) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(tenant, rkey) DO UPDATE SET version = excluded.version,
                        last_updated = excluded.last_updated, deleted = excluded.deleted
                    """
            ).execute(arguments: [tenant, Data(rkey), Data(ResourceBlob.typeKey(keys, type: type)), version, now, stored.deleted])
            try db.cachedStatement(sql: "DELETE FROM terms WHERE tenant = ? AND rkey = ?").execute(arguments: [tenant, Data(rkey)])
            if let resource {
                for term in SearchTerms.extract(from: resource, type: type) {
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO terms(tenant, term, rkey) VALUES (?, ?, ?)")
                        .execute(arguments: [tenant, Data(ResourceBlob.termKey(keys, type: type, term: term)), Data(rkey)])
                }
            }
            try db.cachedStatement(sql: "INSERT INTO changes(tenant, rkey, version, lane) VALUES (?, ?, ?, ?)")
                .execute(arguments: [tenant, Data(rkey), version, ChangeLane.of(type: type).rawValue])
            result = WriteResult(version: stored, created: currentlyDeleted && resource != nil, lsn: db.lastInsertedRowID)
        }
        if let claim, let claimKey {
            let status = resource == nil ? 204 : (result.created ? 201 : 200)
            let fingerprint = Data(HMACSHA256.mac(key: keys.lookupKey("fingerprint"), data: claim.fingerprint))
            try db.cachedStatement(
                sql: """
                    INSERT INTO idempotency(tenant, key_hash, fingerprint, status, rkey, version, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [tenant, claimKey, fingerprint, status, Data(rkey), result.version?.version ?? 0, now])
        }
        return result
    }

    package func expireIdempotencyKeys(before cutoff: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM idempotency WHERE created_at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    // MARK: Change log

    package func changes(tenant: String, after lsn: Int64, limit: Int, maxBytes: Int, lane: ChangeLane?) async throws -> [Change] {
        let keys = try await keysForRead(tenant: tenant)
        return try await pool.readRows { db -> [Change] in
            // Only the tenant's own positions: its log reaches back to `lsn` unless one of its
            // changes after `lsn` was compacted, and `lsn` past its newest change means the
            // origin lost changes the edge had (restored from an older backup).
            let floor = try Self.tenantFloor(db, tenant: tenant)
            let tenantHead = try Self.tenantHead(db, tenant: tenant)
            if lsn < floor || lsn > tenantHead { throw LogGoneError(requested: lsn, floor: floor, head: tenantHead) }
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT h.version, h.last_updated, h.deleted, h.blob, c.rkey, c.lsn FROM changes c
                    JOIN history h ON h.tenant = c.tenant AND h.rkey = c.rkey AND h.version = c.version
                    WHERE c.tenant = ? AND c.lsn > ? \(lane == nil ? "" : "AND c.lane = \(lane!.rawValue)")
                    ORDER BY c.lsn LIMIT ?
                    """, arguments: [tenant, lsn, limit])
            // Opened one at a time: the batch ends with the change that reaches `maxBytes`.
            var changes: [Change] = []
            var bytes = 0
            while bytes < maxBytes, let row = try rows.next() {
                let change = Change(lsn: row["lsn"], resource: try self.open(row, keys: keys, rkey: Array(row["rkey"] as Data), db: db))
                bytes += change.resource.json.count
                changes.append(change)
            }
            return changes
        }
    }

    package func compactLog(keep: Int) async throws -> Int64 {
        try await pool.write { db in
            let maxLSN = try Int64.fetchOne(db, sql: "SELECT MAX(lsn) FROM changes") ?? 0
            let floor = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_floor'") ?? 0
            let newFloor = max(floor, maxLSN - Int64(keep))
            guard newFloor > floor else { return floor }
            try db.execute(
                sql: """
                    INSERT INTO tenant_log_floor(tenant, lsn) SELECT tenant, MAX(lsn) FROM changes WHERE lsn <= ? GROUP BY tenant
                    ON CONFLICT(tenant) DO UPDATE SET lsn = max(lsn, excluded.lsn)
                    """, arguments: [newFloor])
            try db.execute(sql: "DELETE FROM changes WHERE lsn <= ?", arguments: [newFloor])
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'log_floor'", arguments: [newFloor])
            return newFloor
        }
    }

    package func snapshot(tenant: String) async throws -> any OriginSnapshot {
        let keys = try await keysForRead(tenant: tenant)
        let snapshotPool = try pool.makeSnapshot()
        let (lsn, count) = try await snapshotPool.read { db in
            (
                try Self.tenantHead(db, tenant: tenant),
                try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM resources WHERE tenant = ? AND deleted = 0", arguments: [tenant]) ?? 0
            )
        }
        return SQLiteOriginSnapshot(pool: snapshotPool, tenant: tenant, keys: keys, lsn: lsn, count: count, store: self)
    }

    fileprivate func openRow(_ row: Row, keys: TenantKeys, rkey: [UInt8]) throws -> ResourceVersion {
        try open(row, keys: keys, rkey: rkey)
    }
}

/// A WAL snapshot of one tenant, read in pages ordered by lookup key.
final class SQLiteOriginSnapshot: OriginSnapshot {
    let pool: DatabaseSnapshot
    let tenant: String
    let keys: TenantKeys
    let lsn: Int64
    let count: Int64
    let store: SQLiteOriginStore
    private let cursor = Mutex<Data?>(nil)

    init(pool: DatabaseSnapshot, tenant: String, keys: TenantKeys, lsn: Int64, count: Int64, store: SQLiteOriginStore) {
        self.pool = pool
        self.tenant = tenant
        self.keys = keys
        self.lsn = lsn
        self.count = count
        self.store = store
    }

    func next(limit: Int, maxBytes: Int) async throws -> [ResourceVersion] {
        let after = cursor.withLock { $0 } ?? Data()
        let tenant = self.tenant
        let (page, last) = try await pool.readRows { db -> ([ResourceVersion], Data?) in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT h.version, h.last_updated, h.deleted, h.blob, r.rkey FROM resources r
                    JOIN history h ON h.tenant = r.tenant AND h.rkey = r.rkey AND h.version = r.version
                    WHERE r.tenant = ? AND r.deleted = 0 AND r.rkey > ? ORDER BY r.rkey LIMIT ?
                    """, arguments: [tenant, after, limit])
            // Opened one at a time: the page ends with the resource that reaches `maxBytes`.
            var page: [ResourceVersion] = []
            var bytes = 0
            var last: Data?
            while bytes < maxBytes, let row = try rows.next() {
                let rkey = row["rkey"] as Data
                let resource = try self.store.openRow(row, keys: self.keys, rkey: Array(rkey))
                bytes += resource.json.count
                page.append(resource)
                last = rkey
            }
            return (page, last)
        }
        if let last { cursor.withLock { $0 = last } }
        return page
    }
}
