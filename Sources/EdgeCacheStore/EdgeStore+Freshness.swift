import EdgeCacheCore
import Foundation
import GRDB

extension EdgeStore {
    /// Records that the origin confirmed the cached version of a resource (a 304 to a
    /// conditional GET): its age starts again from `at`.
    package func confirm(type: String, id: String, version: Int64, at: Int64) async throws {
        let rkey = Data(ResourceBlob.key(keys, type: type, id: id))
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE entries SET stored_at = MAX(stored_at, ?) WHERE rkey = ? AND version = ?", arguments: [at, rkey, version])
        }
    }
}
