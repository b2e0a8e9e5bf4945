import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import EdgeCacheTestSupport
import Foundation
import GRDB
import Testing

@Suite struct AuditStoreTests {
    func record(_ n: Int) -> AuditRecord {
        AuditRecord(
            time: Int64(1000 + n), action: "read", outcome: 200, actor: "client:a", tenant: "a", resource: "Patient/secret-\(n)",
            version: 1, source: "edgecache; hit", policyClass: "operational", policyVersion: "builtin-1", node: "edge-1",
            requestID: "r\(n)")
    }

    @discardableResult
    func makeTrail(_ dir: TempDir, kek: KeyEncryptionKey) async throws -> [Data] {
        let store = try AuditStore(path: dir.path + "/audit.sqlite", kek: kek, clock: SystemWallClock())
        try await store.append((1...10).map(record))
        try await store.append((11...20).map(record))
        let verified = try await store.verify()
        #expect(verified.records == 20 && verified.problems.isEmpty)
        #expect(try await store.records().map(\.record) == (1...20).map(record))
        return []
    }

    /// Reads the sealed blob of one record straight from the file's bytes (after the WAL is
    /// checkpointed when the store closes) and flips one byte of it in the file.
    func flipOneByte(ofRecordWithTime time: Int64, in path: String, kek: KeyEncryptionKey) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // The sealed blob is opaque; find it through a fresh store's view of the database.
        let marker = try sealedBlob(path: path, seq: time - 1000)
        let range = try #require(bytes.range(of: marker))
        bytes[range.lowerBound + marker.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    func sealedBlob(path: String, seq: Int64) throws -> Data {
        let data = try runPython(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); sys.stdout.buffer.write(c.execute('select blob from audit where seq=?',(int(sys.argv[2]),)).fetchone()[0])",
            path, String(seq)
        ).output
        return data
    }

    @Test func verifyNamesAnAlteredRecord() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        _ = try await makeTrail(dir, kek: kek)
        // The store above is released: SQLite checkpointed its WAL into the main file.
        try flipOneByte(ofRecordWithTime: 1007, in: dir.path + "/audit.sqlite", kek: kek)
        let reopened = try AuditStore(path: dir.path + "/audit.sqlite", kek: kek, clock: SystemWallClock())
        let result = try await reopened.verify()
        #expect(result.problems.map(\.seq) == [7], "\(result.problems)")
        #expect(result.problems.first?.message.contains("altered") == true)
    }

    @Test func verifyCatchesRemovedAndReorderedRecords() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        _ = try await makeTrail(dir, kek: kek)
        let path = dir.path + "/audit.sqlite"
        func sql(_ statement: String) throws { try sqliteExecute(path, statement) }
        try sql("DELETE FROM audit WHERE seq = 12;")
        var result = try await AuditStore(path: path, kek: kek, clock: SystemWallClock()).verify()
        #expect(result.problems.contains { $0.seq == 12 && $0.message.contains("missing") }, "\(result.problems)")
        // Removing the newest record is caught too (the recorded head is past the chain's end).
        try sql("DELETE FROM audit WHERE seq = 20;")
        result = try await AuditStore(path: path, kek: kek, clock: SystemWallClock()).verify()
        #expect(result.problems.contains { $0.message.contains("chain ends at 19") }, "\(result.problems)")
        // Swapping two records' positions breaks the chain.
        try sql("UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -3;")
        result = try await AuditStore(path: path, kek: kek, clock: SystemWallClock()).verify()
        #expect(result.problems.contains { $0.seq == 3 || $0.seq == 4 }, "\(result.problems)")
    }

    @Test func recordsAreSealedAtRest() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        _ = try await makeTrail(dir, kek: kek)
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/" + file))
            #expect(bytes.range(of: Data("secret-".utf8)) == nil, "\(file)")
            #expect(bytes.range(of: Data("client:a".utf8)) == nil, "\(file)")
        }
    }

    /// An audit file written before its schema moved to named migrations (no `grdb_migrations`
    /// table) opens, migrates in place, and keeps its chain whole.
    @Test func anAuditFileFromBeforeTheMigratorOpensWithItsChainWhole() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        try await makeTrail(dir, kek: kek)
        let old = try DatabaseQueue(path: dir.path + "/audit.sqlite")
        try await old.write { try $0.execute(sql: "DROP TABLE grdb_migrations") }
        try await old.close()
        let reopened = try AuditStore(path: dir.path + "/audit.sqlite", kek: kek, clock: SystemWallClock())
        let verified = try await reopened.verify()
        #expect(verified.records == 20 && verified.problems.isEmpty)
        try await reopened.append([record(21)])
        #expect(try await reopened.verify().records == 21)
        let db = try DatabaseQueue(path: dir.path + "/audit.sqlite")
        #expect(
            try await db.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") } == ["v1-tables", "v2-anchors"])
        try await db.close()
    }
}
