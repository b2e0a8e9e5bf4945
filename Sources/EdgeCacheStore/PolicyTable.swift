import EdgeCacheCore
import Foundation
import GRDB

/// The policy registry last received from the origin (`policy`, one row). The registry holds
/// rules, no patient data, so it is kept as plain JSON.
package final class PolicyTable: Sendable {
    let core: EdgeDatabase

    init(core: EdgeDatabase) {
        self.core = core
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS policy(id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, body BLOB NOT NULL,
            received_at INTEGER NOT NULL)
        """

    /// The policy registry last received from the origin, if any.
    package func stored() throws -> PolicyRegistry? {
        let body = try core.pool.read { db -> Data? in
            guard try db.tableExists("policy") else { return nil }
            return try Data.fetchOne(db, sql: "SELECT body FROM policy WHERE id = 1")
        }
        return body.flatMap { PolicyRegistry.decode(Array($0)) }
    }

    /// Keeps a registry received from the origin (replacing the previous one).
    package func save(_ registry: PolicyRegistry) async throws {
        let body = Data(registry.json())
        let now = core.clock.nowMillis()
        try await core.pool.write { db in
            try db.execute(sql: Self.schema)
            try db.execute(
                sql: "INSERT OR REPLACE INTO policy(id, version, body, received_at) VALUES (1, ?, ?, ?)",
                arguments: [registry.version, body, now])
        }
    }
}
