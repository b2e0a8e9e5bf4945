import EdgeCacheCrypto
import Foundation
import GRDB

/// The `data_keys` table: per-tenant data keys, wrapped by the node's KEK.
///
/// Versions 1, 2, … are data keys; the highest is current for new writes, older ones open
/// blobs not yet re-sealed. Version 0, written at a tenant's first rotation, holds the tenant's
/// index key (wrapped like a data key), so lookup keys outlive the data key they came from;
/// without it the index key is derived from the tenant's lowest data key version (stores made
/// before rotation existed). `shredded_tenants` remembers tenants whose keys were destroyed.
enum DataKeys {
    static let schema = """
        CREATE TABLE IF NOT EXISTS data_keys(
            tenant TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL,
            PRIMARY KEY(tenant, version)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS shredded_tenants(tenant TEXT PRIMARY KEY, shredded_at INTEGER NOT NULL) WITHOUT ROWID;
        """

    /// The tenant's newest data key, created (and wrapped) on first use.
    /// - Throws: if the tenant was shredded, or `kek` is not the KEK that wrapped the keys.
    static func loadOrCreate(_ db: Database, tenant: String, kek: KeyEncryptionKey, now: Int64) throws -> TenantKeys {
        if let keys = try loadCurrent(db, tenant: tenant, kek: kek) { return keys }
        try refuseIfShredded(db, tenant: tenant)
        let keys = try TenantKeys.generate(tenant: tenant, version: 1)
        let wrapped = try kek.wrap(dataKey: keys.rawDataKey, tenant: tenant, version: 1)
        try db.execute(
            sql: "INSERT INTO data_keys(tenant, version, wrapped, created_at) VALUES (?, ?, ?, ?)",
            arguments: [tenant, 1, Data(wrapped), now])
        return keys
    }

    /// The tenant's newest data key, or nil if it has none.
    static func loadCurrent(_ db: Database, tenant: String, kek: KeyEncryptionKey) throws -> TenantKeys? {
        guard let version = try currentVersion(db, tenant: tenant) else { return nil }
        return try load(db, tenant: tenant, version: version, kek: kek)
    }

    /// The highest data key version of a tenant (nil if none).
    static func currentVersion(_ db: Database, tenant: String) throws -> UInt32? {
        try Int64.fetchOne(
            db, sql: "SELECT MAX(version) FROM data_keys WHERE tenant = ? AND version > 0", arguments: [tenant]
        ).map { UInt32($0) }
    }

    /// One data key version with the tenant's index key, or nil if that version is gone.
    static func load(_ db: Database, tenant: String, version: UInt32, kek: KeyEncryptionKey) throws -> TenantKeys? {
        guard let wrapped = try wrapped(db, tenant: tenant, version: version) else { return nil }
        let dataKey = try kek.unwrap(wrapped, tenant: tenant, version: version)
        return TenantKeys(tenant: tenant, version: version, dataKey: dataKey, indexKey: try indexKey(db, tenant: tenant, kek: kek))
    }

    /// The tenant's index key: version 0 if stored, else derived from its lowest data key.
    static func indexKey(_ db: Database, tenant: String, kek: KeyEncryptionKey) throws -> [UInt8] {
        if let wrapped = try wrapped(db, tenant: tenant, version: 0) {
            return try kek.unwrap(wrapped, tenant: tenant, version: 0)
        }
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT version, wrapped FROM data_keys WHERE tenant = ? AND version > 0 ORDER BY version LIMIT 1",
                arguments: [tenant])
        else { throw StoreError("tenant \(tenant) has no data key") }
        let first = try kek.unwrap(Array(row["wrapped"] as Data), tenant: tenant, version: UInt32(row["version"] as Int64))
        return TenantKeys.deriveIndexKey(from: first)
    }

    private static func wrapped(_ db: Database, tenant: String, version: UInt32) throws -> [UInt8]? {
        try Data.fetchOne(
            db, sql: "SELECT wrapped FROM data_keys WHERE tenant = ? AND version = ?", arguments: [tenant, Int64(version)]
        ).map { Array($0) }
    }

    /// Adds a new current data key version (the index key is stored as version 0 first, so it
    /// survives the retirement of the key it was derived from).
    static func rotate(_ db: Database, tenant: String, kek: KeyEncryptionKey, now: Int64) throws -> TenantKeys {
        guard let current = try loadCurrent(db, tenant: tenant, kek: kek) else {
            try refuseIfShredded(db, tenant: tenant)
            throw StoreError("tenant \(tenant) has no data key yet; nothing to rotate")
        }
        if try wrapped(db, tenant: tenant, version: 0) == nil {
            let wrappedIndex = try kek.wrap(dataKey: current.rawIndexKey, tenant: tenant, version: 0)
            try db.execute(
                sql: "INSERT INTO data_keys(tenant, version, wrapped, created_at) VALUES (?, 0, ?, ?)",
                arguments: [tenant, Data(wrappedIndex), now])
        }
        let version = current.version + 1
        let next = current.withDataKey(try SecureRandom.bytes(32), version: version)
        try db.execute(
            sql: "INSERT INTO data_keys(tenant, version, wrapped, created_at) VALUES (?, ?, ?, ?)",
            arguments: [tenant, Int64(version), Data(try kek.wrap(dataKey: next.rawDataKey, tenant: tenant, version: version)), now])
        return next
    }

    /// Re-wraps every key row under `new`. Rows `new` already opens are left alone, so an
    /// interrupted run can simply be repeated. Returns the number of rows re-wrapped.
    static func rewrap(_ db: Database, from old: KeyEncryptionKey, to new: KeyEncryptionKey) throws -> Int {
        var count = 0
        for row in try Row.fetchAll(db, sql: "SELECT tenant, version, wrapped FROM data_keys") {
            let tenant: String = row["tenant"]
            let version = UInt32(row["version"] as Int64)
            let wrapped = Array(row["wrapped"] as Data)
            if (try? new.unwrap(wrapped, tenant: tenant, version: version)) != nil { continue }
            let key = try old.unwrap(wrapped, tenant: tenant, version: version)
            try db.execute(
                sql: "UPDATE data_keys SET wrapped = ? WHERE tenant = ? AND version = ?",
                arguments: [Data(try new.wrap(dataKey: key, tenant: tenant, version: version)), tenant, Int64(version)])
            count += 1
        }
        return count
    }

    /// Deletes every key row of a tenant and remembers that it was shredded.
    static func shred(_ db: Database, tenant: String, now: Int64) throws -> Int {
        try db.execute(sql: "DELETE FROM data_keys WHERE tenant = ?", arguments: [tenant])
        let removed = db.changesCount
        try db.execute(
            sql: "INSERT OR REPLACE INTO shredded_tenants(tenant, shredded_at) VALUES (?, ?)", arguments: [tenant, now])
        return removed
    }

    static func refuseIfShredded(_ db: Database, tenant: String) throws {
        if let at = try Int64.fetchOne(db, sql: "SELECT shredded_at FROM shredded_tenants WHERE tenant = ?", arguments: [tenant]) {
            throw TenantShreddedError(tenant: tenant, shreddedAt: at)
        }
    }
}

/// The tenant's data keys were destroyed (`edgecache keys shred`): its data is gone for good.
package struct TenantShreddedError: Error, Sendable, CustomStringConvertible {
    package let tenant: String
    /// When (epoch ms).
    package let shreddedAt: Int64

    package var description: String {
        let when = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(shreddedAt) / 1000))
        return "the data keys of tenant \(tenant) were shredded at \(when); its data can no longer be read"
    }
}
