import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// The audit trail on SQLite (its own file): records sealed under the node's audit data key
/// and hash-chained, `hash(n) = SHA-256(hash(n-1) || record n)`, so any altered, removed or
/// reordered record is found by ``verify()``.
package final class AuditStore: Sendable {
    let pool: DatabasePool
    let ring: KeyRing
    let kek: KeyEncryptionKey
    let clock: any WallClock
    /// (last seq, last hash) of the chain.
    private let head: Mutex<(Int64, [UInt8])>

    package static let genesis = [UInt8](repeating: 0, count: 32)

    package init(path: String, kek: KeyEncryptionKey, clock: any WallClock) throws {
        let pool = try SQLiteFile.openPool(path: path, readers: 2)
        self.pool = pool
        self.kek = kek
        self.clock = clock
        let now = clock.nowMillis()
        try Self.migrator.migrate(pool)
        let (ring, last) = try pool.write { db -> (KeyRing, (Int64, [UInt8])) in
            let ring = try KeyRing(db, pool: pool, tenant: "_audit", kek: kek, now: now)
            return (ring, try Self.storedHead(db))
        }
        self.ring = ring
        head = Mutex(last)
    }

    /// The audit file's schema as named migrations (see ``EdgeStore/migrator``: files from before
    /// the migrator run every migration, each a no-op where its change is already there).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-tables") { db in
            try db.execute(sql: DataKeys.schema)
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, blob BLOB NOT NULL);
                    CREATE TABLE IF NOT EXISTS audit_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                    INSERT OR IGNORE INTO audit_meta(key, value) VALUES ('head_seq', 0);
                    """)
        }
        migrator.registerMigration("v2-anchors") { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS audit_anchor(seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, acknowledged_at INTEGER NOT NULL);
                    CREATE TABLE IF NOT EXISTS anchors_received(
                        tenant TEXT NOT NULL, node TEXT NOT NULL, count INTEGER NOT NULL, hash BLOB NOT NULL,
                        received_at INTEGER NOT NULL, PRIMARY KEY(tenant, node, count)) WITHOUT ROWID;
                    """)
        }
        return migrator
    }

    /// The chain head as stored. Continues after the recorded head even if records past the
    /// last one were removed, so their numbers are never reused and the gap stays visible to verify.
    private static func storedHead(_ db: Database) throws -> (Int64, [UInt8]) {
        let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        var last: (Int64, [UInt8]) = row.map { ($0["seq"], Array($0["hash"] as Data)) } ?? (0, Self.genesis)
        let recorded = try Int64.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'head_seq'") ?? 0
        last.0 = max(last.0, recorded)
        return last
    }

    static func aad(_ seq: Int64) -> [UInt8] { Array("audit|\(seq)".utf8) }

    static func chain(_ previous: [UInt8], _ canonical: [UInt8]) -> [UInt8] { SHA256Digest.hash(previous + canonical) }

    /// Appends records in order, in one transaction (the caller batches). The chain head moves
    /// only once the transaction has committed.
    package func append(_ records: [AuditRecord]) async throws {
        guard !records.isEmpty else { return }
        let newHead = try await pool.write { db in try self.insert(db, records) }
        head.withLock { $0 = newHead }
    }

    /// ``append(_:)`` without suspending (and so without cancellation): for the last flush of a
    /// shutdown that ran out of time.
    package func appendNow(_ records: [AuditRecord]) throws {
        guard !records.isEmpty else { return }
        let newHead = try pool.write { db in try self.insert(db, records) }
        head.withLock { $0 = newHead }
    }

    private func insert(_ db: Database, _ records: [AuditRecord]) throws -> (Int64, [UInt8]) {
        let sealer = Sealer(keys: try ring.refresh(db))
        // The head is read inside the write transaction: an operator command (another process)
        // may have appended since, and the chain must continue from its record, not fork.
        var (seq, hash) = head.withLock { $0 }
        if let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")),
            (row["seq"] as Int64) > seq
        {
            (seq, hash) = (row["seq"], Array(row["hash"] as Data))
        }
        for record in records {
            let canonical = record.canonical()
            seq += 1
            hash = Self.chain(hash, canonical)
            try db.cachedStatement(sql: "INSERT INTO audit(seq, hash, blob) VALUES (?, ?, ?)")
                .execute(arguments: [seq, Data(hash), Data(try sealer.seal(canonical, aad: Self.aad(seq)))])
        }
        try db.execute(sql: "UPDATE audit_meta SET value = ? WHERE key = 'head_seq'", arguments: [seq])
        return (seq, hash)
    }

    /// Records that the origin acknowledged the chain up to `seq` with `hash` (the anchor).
    package func recordAnchor(seq: Int64, hash: [UInt8], at now: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO audit_anchor(seq, hash, acknowledged_at) VALUES (?, ?, ?)",
                arguments: [seq, Data(hash), now])
        }
    }

    /// The newest acknowledged anchor.
    package func lastAnchor() async throws -> (seq: Int64, hash: [UInt8])? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_anchor WHERE seq > 0 ORDER BY seq DESC LIMIT 1")
                .map { ($0["seq"], Array($0["hash"] as Data)) }
        }
    }

    /// The origin's side: accepts an edge's chain head if it extends what the edge sent before
    /// (a chain only grows). Returns false when the head contradicts an earlier one.
    package func acceptAnchor(tenant: String, node: String, count: Int64, hash: [UInt8], at now: Int64) async throws -> Bool {
        try await pool.write { db in
            if let previous = try Row.fetchOne(
                db, sql: "SELECT count, hash FROM anchors_received WHERE tenant = ? AND node = ? ORDER BY count DESC LIMIT 1",
                arguments: [tenant, node])
            {
                let previousCount: Int64 = previous[0]
                if count < previousCount || (count == previousCount && Array(previous[1] as Data) != hash) { return false }
            }
            try db.execute(
                sql: "INSERT OR REPLACE INTO anchors_received(tenant, node, count, hash, received_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [tenant, node, count, Data(hash), now])
            return true
        }
    }

    /// Number of records and the head hash.
    package var chainHead: (count: Int64, hash: [UInt8]) { head.withLock { ($0.0, $0.1) } }

    /// One problem found by ``verify()``.
    package struct Problem: Sendable, CustomStringConvertible {
        package let seq: Int64
        package let message: String
        package var description: String { "record \(seq): \(message)" }
    }

    /// Walks the whole chain: every record must open (not altered), follow its predecessor
    /// without a gap (none removed), and carry the hash of the chain so far (none reordered).
    package func verify() async throws -> (records: Int64, problems: [Problem], head: [UInt8]) {
        let ring = self.ring
        return try await pool.read { db in
            var problems: [Problem] = []
            var expectedSeq: Int64 = 1
            var hash = Self.genesis
            var count: Int64 = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, hash, blob FROM audit ORDER BY seq")
            while let row = try cursor.next() {
                let seq: Int64 = row["seq"]
                count += 1
                if seq != expectedSeq {
                    problems.append(
                        Problem(
                            seq: expectedSeq,
                            message: seq > expectedSeq ? "missing (records \(expectedSeq)…\(seq - 1) removed)" : "out of order"))
                }
                expectedSeq = seq + 1
                let stored = Array(row["hash"] as Data)
                guard let canonical = try? ring.open(Array(row["blob"] as Data), aad: Self.aad(seq), db: db) else {
                    problems.append(Problem(seq: seq, message: "altered (the sealed record does not open)"))
                    hash = stored
                    continue
                }
                let expected = Self.chain(hash, canonical)
                if expected != stored {
                    problems.append(
                        Problem(seq: seq, message: "does not follow the chain (altered, or records before it removed or reordered)"))
                }
                hash = stored
            }
            if let anchor = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_anchor WHERE seq > 0 ORDER BY seq DESC LIMIT 1") {
                let anchorSeq: Int64 = anchor["seq"]
                let stored = try Data.fetchOne(db, sql: "SELECT hash FROM audit WHERE seq = ?", arguments: [anchorSeq])
                if stored.map({ Array($0) }) != Array(anchor["hash"] as Data) {
                    problems.append(
                        Problem(seq: anchorSeq, message: "does not match the head the origin acknowledged (the chain was rewritten or cut)")
                    )
                }
            }
            let headSeq = try Int64.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'head_seq'") ?? 0
            if headSeq > expectedSeq - 1 {
                problems.append(
                    Problem(seq: expectedSeq, message: "missing (the chain ends at \(expectedSeq - 1) but recorded \(headSeq))"))
            }
            return (count, problems, hash)
        }
    }

    /// All records in order (for export); records that do not open are skipped.
    package func records() async throws -> [(seq: Int64, record: AuditRecord)] {
        let ring = self.ring
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, blob FROM audit ORDER BY seq").compactMap { row in
                let seq: Int64 = row["seq"]
                guard let plain = try? ring.open(Array(row["blob"] as Data), aad: Self.aad(seq), db: db),
                    let record = AuditRecord.decode(plain)
                else { return nil }
                return (seq, record)
            }
        }
    }

    /// Key rotation and re-sealing of the audit records (tenant `_audit`). Re-sealing changes
    /// only the sealed form: the chain hashes cover the canonical record, so they still verify.
    package var keyMaintenance: KeyMaintenance {
        KeyMaintenance(
            pool: pool, kek: kek,
            columns: [
                SealedColumn(table: "audit", column: "blob", keyColumns: ["seq"], aad: { row in Self.aad(row["seq"]) })
            ],
            shredRows: { _, tenant in
                throw StoreError("the audit trail (\(tenant)) is not shredded; it outlives the data it describes")
            },
            ring: { [ring] name in
                guard name == ring.tenant else { throw StoreError("the audit file holds only tenant \(ring.tenant)") }
                return ring
            },
            forget: { _, _ in }, clock: clock)
    }
}
