import EdgeCacheCrypto
import Foundation
import GRDB

extension EdgeStore {
    /// The tenant's current keys as last seen (lookup keys are stable across rotations).
    package var keys: TenantKeys { core.keys }

    /// Whether the tenant's current data key can be read from the database and opened (false
    /// after a shred, or when the key rows cannot be read).
    package func keysUsable() async -> Bool {
        let ring = core.ring
        return
            (try? await core.pool.read { db in
                _ = try ring.refresh(db); return true
            }) ?? false
    }

    /// Key rotation, re-sealing and shredding on the edge's file (its one tenant): cache
    /// entries (and a snapshot being staged), queued writes and conflict records.
    package var keyMaintenance: KeyMaintenance {
        let ring = core.ring
        let tenant = ring.tenant
        let entryAAD: @Sendable (Row) -> [UInt8] = { row in
            Sealer.aad(lookupKey: Array(row["rkey"] as Data), version: row["version"])
        }
        return KeyMaintenance(
            pool: core.pool, kek: core.kek,
            columns: [
                SealedColumn(table: "entries", column: "blob", keyColumns: ["rkey"], aadColumns: ["version"], aad: entryAAD),
                SealedColumn(table: "staged_entries", column: "blob", keyColumns: ["rkey"], aadColumns: ["version"], aad: entryAAD),
                SealedColumn(
                    table: "outbox", column: "blob", keyColumns: ["seq"], aadColumns: ["key_hash"],
                    aad: { row in Array("outbox|".utf8) + Array(row["key_hash"] as Data) }),
                SealedColumn(
                    table: "conflicts", column: "origin_blob", keyColumns: ["seq"], aadColumns: ["rkey"],
                    aad: { row in Array("conflict|".utf8) + Array(row["rkey"] as Data) + Array(String(row["seq"] as Int64).utf8) }),
            ],
            shredRows: { [hot = core.hot] db, shredded in
                guard shredded == tenant else {
                    throw StoreError("this edge holds tenant \(tenant), not \(shredded); shred \(shredded) at the origin")
                }
                try db.execute(
                    sql: """
                        DELETE FROM entries; DELETE FROM terms; DELETE FROM staged_entries; DELETE FROM staged_terms;
                        DELETE FROM conflicts; DELETE FROM outbox;
                        """)
                hot.clear()
            },
            ring: { name in
                guard name == tenant else { throw StoreError("this edge holds tenant \(tenant), not \(name)") }
                return ring
            },
            forget: { _, error in ring.forget(error) }, clock: core.clock)
    }
}
