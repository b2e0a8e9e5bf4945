import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// A column of sealed blobs and how to rebuild each row's AAD (for re-sealing).
struct SealedColumn: Sendable {
    /// The table.
    let table: String
    /// The blob column (NULL values are skipped).
    let column: String
    /// The primary key, in order: re-sealing walks the table along it.
    let keyColumns: [String]
    /// Other columns the AAD needs.
    var aadColumns: [String] = []
    /// When set, only the tenant's rows (multi-tenant files).
    var tenantColumn: String? = nil
    /// The AAD of a row (selected columns: keys, AAD columns, blob).
    let aad: @Sendable (Row) -> [UInt8]
}

/// How far a re-seal has come.
package struct ResealProgress: Sendable, Equatable {
    /// Sealed entries looked at.
    package var scanned = 0
    /// Entries re-sealed to the current version.
    package var resealed = 0
    package init() {}
}

/// Key operations on one SQLite file of sealed rows (origin, edge or audit): rotate a tenant's
/// data key, re-seal its entries to the current version in small batches, retire versions no
/// entry uses, shred a tenant. Safe while a node uses the same file (WAL; short write
/// transactions; readers load any version on demand).
package struct KeyMaintenance: Sendable {
    let pool: DatabasePool
    let kek: KeyEncryptionKey
    let columns: [SealedColumn]
    /// Removes a tenant's rows (inside the shred transaction).
    let shredRows: @Sendable (Database, String) throws -> Void
    let ring: @Sendable (String) throws -> KeyRing
    /// Drops a tenant's keys held in memory, if any (after a shred).
    let forget: @Sendable (String, any Error) -> Void
    let clock: any WallClock

    /// The file's tenants that have data keys.
    package func tenants() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT tenant FROM data_keys ORDER BY tenant") }
    }

    /// The tenant's current data key version (nil if none).
    package func currentVersion(tenant: String) async throws -> UInt32? {
        try await pool.read { db in try DataKeys.currentVersion(db, tenant: tenant) }
    }

    /// Adds a new data key version that becomes current for new writes at once (in this
    /// process) and from their next write transaction in any other process. Returns it.
    package func rotate(tenant: String) async throws -> UInt32 {
        let ring = try ring(tenant)
        let now = clock.nowMillis()
        return try await pool.write { db in
            let keys = try DataKeys.rotate(db, tenant: tenant, kek: self.kek, now: now)
            ring.invalidate()  // data_version does not move for this connection's own commits
            try ring.refresh(db)
            return keys.version
        }
    }

    /// Re-seals every entry of the tenant that is not under the current version, `batchSize`
    /// rows per write transaction, walking each table along its primary key; repeats until a
    /// pass finds nothing left (so entries a node sealed under the old version just before it
    /// noticed the rotation are caught too).
    package func reseal(
        tenant: String, batchSize: Int = 256, progress: @Sendable (ResealProgress) -> Void = { _ in }
    ) async throws -> ResealProgress {
        let ring = try ring(tenant)
        var total = ResealProgress()
        for _ in 0..<10 {
            var resealedThisPass = 0
            for column in columns {
                var after: [DatabaseValue]?
                repeat {
                    let cursor = after
                    let batch = try await pool.write { db in
                        let current = try ring.refresh(db)
                        return try Self.resealBatch(db, column, tenant: tenant, ring: ring, to: current, after: cursor, limit: batchSize)
                    }
                    after = batch.next
                    total.scanned += batch.scanned
                    total.resealed += batch.resealed
                    resealedThisPass += batch.resealed
                    progress(total)
                    await Task.yield()
                } while after != nil
            }
            if resealedThisPass == 0 { break }
        }
        return total
    }

    private static func resealBatch(
        _ db: Database, _ c: SealedColumn, tenant: String, ring: KeyRing, to current: TenantKeys, after: [DatabaseValue]?,
        limit: Int
    ) throws -> (next: [DatabaseValue]?, scanned: Int, resealed: Int) {
        let keys = c.keyColumns.joined(separator: ", ")
        var conditions = ["\(c.column) IS NOT NULL"]
        var arguments = StatementArguments()
        if let tenantColumn = c.tenantColumn {
            conditions.append("\(tenantColumn) = ?")
            _ = arguments.append(contentsOf: [tenant])
        }
        if let after {
            conditions.append("(\(keys)) > (\(after.map { _ in "?" }.joined(separator: ", ")))")
            _ = arguments.append(contentsOf: StatementArguments(after))
        }
        let selected = (c.keyColumns + c.aadColumns + [c.column]).joined(separator: ", ")
        let rows = try Row.fetchAll(
            db, sql: "SELECT \(selected) FROM \(c.table) WHERE \(conditions.joined(separator: " AND ")) ORDER BY \(keys) LIMIT ?",
            arguments: arguments + [limit])
        let sealer = Sealer(keys: current)
        let prefix = Sealer.versionPrefix(current.version)
        var resealed = 0
        let match = c.keyColumns.map { "\($0) = ?" } + (c.tenantColumn.map { ["\($0) = ?"] } ?? [])
        let update = "UPDATE \(c.table) SET \(c.column) = ? WHERE \(match.joined(separator: " AND "))"
        for row in rows {
            let blob = Array(row[c.column] as Data)
            if blob.starts(with: prefix) { continue }
            let aad = c.aad(row)
            let plain = try ring.open(blob, aad: aad, db: db)
            var updateArguments: StatementArguments = [Data(try sealer.seal(plain, aad: aad))]
            _ = updateArguments.append(contentsOf: StatementArguments(c.keyColumns.map { row[$0] as DatabaseValue }))
            if c.tenantColumn != nil { _ = updateArguments.append(contentsOf: [tenant]) }
            try db.execute(sql: update, arguments: updateArguments)
            resealed += 1
        }
        let next = rows.count < limit ? nil : rows.last.map { row in c.keyColumns.map { row[$0] as DatabaseValue } }
        return (next, rows.count, resealed)
    }

    /// Number of the tenant's sealed entries under each data key version.
    package func versionsInUse(tenant: String) async throws -> [UInt32: Int] {
        try await pool.read { db in try Self.versionsInUse(db, self.columns, tenant: tenant) }
    }

    private static func versionsInUse(_ db: Database, _ columns: [SealedColumn], tenant: String) throws -> [UInt32: Int] {
        var counts: [UInt32: Int] = [:]
        for c in columns {
            let filter = c.tenantColumn.map { "AND \($0) = ?" } ?? ""
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT substr(\(c.column), 1, 5) AS head, COUNT(*) AS n FROM \(c.table)
                    WHERE \(c.column) IS NOT NULL \(filter) GROUP BY head
                    """, arguments: c.tenantColumn == nil ? [] : [tenant])
            for row in rows {
                let version = Sealer.keyVersion(of: Array(row["head"] as Data) + [0]) ?? 0
                counts[version, default: 0] += row["n"] as Int
            }
        }
        return counts
    }

    /// Deletes the tenant's data key versions that no entry uses any more (never the current
    /// one, never the index key), checked and deleted in one transaction. Returns them.
    package func retireUnused(tenant: String) async throws -> [UInt32] {
        try await pool.write { db in
            guard let current = try DataKeys.currentVersion(db, tenant: tenant) else { return [] }
            let inUse = try Self.versionsInUse(db, self.columns, tenant: tenant)
            let versions = try Int64.fetchAll(
                db, sql: "SELECT version FROM data_keys WHERE tenant = ? AND version > 0 AND version < ?",
                arguments: [tenant, Int64(current)]
            ).map { UInt32($0) }
            let unused = versions.filter { (inUse[$0] ?? 0) == 0 }
            for version in unused {
                try db.execute(
                    sql: "DELETE FROM data_keys WHERE tenant = ? AND version = ?", arguments: [tenant, Int64(version)])
            }
            return unused
        }
    }

    /// Destroys the tenant's data keys and removes its entries, in one transaction with
    /// `secure_delete` on (freed pages are zeroed), then checkpoints and truncates the WAL.
    /// Returns the number of key rows destroyed.
    package func shred(tenant: String) async throws -> Int {
        let now = clock.nowMillis()
        let removed = try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            defer { try? db.execute(sql: "PRAGMA secure_delete = OFF") }
            var removed = 0
            try db.inTransaction {
                try self.shredRows(db, tenant)
                removed = try DataKeys.shred(db, tenant: tenant, now: now)
                return .commit
            }
            return removed
        }
        forget(tenant, TenantShreddedError(tenant: tenant, shreddedAt: now))
        // Move the zeroed pages into the database file and empty the WAL, so no frame of the
        // old pages stays behind (a running node's open read transaction may delay this).
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return removed
    }

    /// Re-wraps every data key of the SQLite file at `path` under `new`, in one transaction.
    /// The file then opens only with `new`. Repeating the call after a success changes nothing.
    /// - Returns: the number of key rows re-wrapped.
    package static func rewrapKeys(path: String, from old: KeyEncryptionKey, to new: KeyEncryptionKey) throws -> Int {
        let pool = try SQLiteFile.openPool(path: path, readers: 1)
        let count = try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")  // the old wrapped keys do not linger in free pages
            defer { try? db.execute(sql: "PRAGMA secure_delete = OFF") }
            var count = 0
            try db.inTransaction {
                try db.execute(sql: DataKeys.schema)
                count = try DataKeys.rewrap(db, from: old, to: new)
                return .commit
            }
            return count
        }
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        return count
    }
}
