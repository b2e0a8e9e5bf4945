import EdgeCacheCrypto
import Foundation
import GRDB

/// The `data_keys` table: per-tenant data keys, wrapped by the node's KEK.
enum DataKeys {
    static let schema = """
        CREATE TABLE IF NOT EXISTS data_keys(
            tenant TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL,
            PRIMARY KEY(tenant, version)) WITHOUT ROWID
        """

    /// The tenant's newest data key, created (and wrapped) on first use.
    static func loadOrCreate(_ db: Database, tenant: String, kek: KeyEncryptionKey, now: Int64) throws -> TenantKeys {
        if let row = try Row.fetchOne(
            db, sql: "SELECT version, wrapped FROM data_keys WHERE tenant = ? ORDER BY version DESC LIMIT 1",
            arguments: [tenant])
        {
            let version = UInt32(row[0] as Int64)
            let wrapped: [UInt8] = Array(row[1] as Data)
            let dataKey = try kek.unwrap(wrapped, tenant: tenant, version: version)
            return TenantKeys(tenant: tenant, version: version, dataKey: dataKey)
        }
        let keys = try TenantKeys.generate(tenant: tenant, version: 1)
        let wrapped = try kek.wrap(dataKey: keys.rawDataKey, tenant: tenant, version: 1)
        try db.execute(
            sql: "INSERT INTO data_keys(tenant, version, wrapped, created_at) VALUES (?, ?, ?, ?)",
            arguments: [tenant, 1, Data(wrapped), now])
        return keys
    }
}
