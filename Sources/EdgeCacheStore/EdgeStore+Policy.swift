import EdgeCacheCore
import Foundation
import GRDB

extension EdgeStore {
    static let policySchema = """
        CREATE TABLE IF NOT EXISTS policy(id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, body BLOB NOT NULL,
            received_at INTEGER NOT NULL)
        """

    /// The policy registry last received from the origin, if any. (The registry holds rules,
    /// no patient data, so it is kept as plain JSON.)
    package func storedPolicy() throws -> PolicyRegistry? {
        let body = try pool.read { db -> Data? in
            guard try db.tableExists("policy") else { return nil }
            return try Data.fetchOne(db, sql: "SELECT body FROM policy WHERE id = 1")
        }
        return body.flatMap { PolicyRegistry.decode(Array($0)) }
    }

    /// Keeps a registry received from the origin (replacing the previous one).
    package func savePolicy(_ registry: PolicyRegistry) async throws {
        let body = Data(registry.json())
        let now = clock.nowMillis()
        try await pool.write { db in
            try db.execute(sql: Self.policySchema)
            try db.execute(
                sql: "INSERT OR REPLACE INTO policy(id, version, body, received_at) VALUES (1, ?, ?, ?)",
                arguments: [registry.version, body, now])
        }
    }
}
