import EdgeCacheCrypto
import Foundation
import GRDB

/// Checks, without changing anything, that a KEK opens the data keys of an existing store file.
///
/// `edgecache config check` runs it on the role's store and the audit store, so a KEK that
/// `serve` would refuse (another node's, or one replaced without `keys rotate-kek`) fails the
/// check too, before systemd starts the node.
package enum KEKCheck {
    /// Unwraps every key row in the file at `path` with `kek`. A file that does not exist yet, or
    /// has no key rows, passes (the node makes its keys on first start).
    /// - Throws: ``StoreError`` naming the file, if a row does not open with `kek` or the file cannot be read.
    package static func verify(storeFile path: String, kek: KeyEncryptionKey) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        let rows: [Row]
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            rows = try queue.read { db in
                guard try db.tableExists("data_keys") else { return [] }
                return try Row.fetchAll(db, sql: "SELECT tenant, version, wrapped FROM data_keys")
            }
        } catch {
            throw StoreError("cannot read \(path): \(error)")
        }
        for row in rows {
            do {
                _ = try kek.unwrap(Array(row["wrapped"] as Data), tenant: row["tenant"], version: UInt32(row["version"] as Int64))
            } catch {
                throw StoreError(
                    "it cannot unwrap the data keys of \(path) (another node's KEK, or one replaced without 'edgecache keys rotate-kek')")
            }
        }
    }
}
