import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import GRDB
import Testing

/// An edge data folder written before the schema moved to named migrations (the layout of
/// f101d7e: a demo edge with 12 cached resources and one write queued while the origin was
/// away, `Fixtures/edge-f101d7e`) opens under today's code, migrates, and keeps everything.
@Suite struct EdgeStoreMigrationTests {
    @Test func aDataFolderFromBeforeTheMigratorOpensAndMigrates() async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/edge-f101d7e").path
        let dir = NSTemporaryDirectory() + "edgecache-migration-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in ["edge.sqlite", "edge.kek"] {
            try FileManager.default.copyItem(atPath: "\(fixture)/\(file)", toPath: "\(dir)/\(file)")
        }
        // git keeps no file modes; a KEK must be 0600 to be loaded.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(dir)/edge.kek")
        let kek = try KeyEncryptionKey.load(path: "\(dir)/edge.kek")

        var store: EdgeStore? = try EdgeStore(path: "\(dir)/edge.sqlite", tenant: "st-mary", kek: kek, clock: SystemWallClock())
        let patient = try #require(try await store!.entries.get(type: "Patient", id: "pat-1"))
        #expect(patient.resource.json.count > 0 && patient.resource.version == 1)
        #expect(try await store!.entries.count() == 12)
        var query = SearchQuery()
        query.count = 50
        let observations = try await store!.entries.search(type: "Observation", query: query).resources
        #expect(observations.count == 9)

        // Its search terms are of the first scheme: a search by a parameter that scheme lacked
        // reads every Observation until the online re-index is done, and answers the same after.
        let first = try #require(observations.first)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(first.json)) as? [String: Any])
        let code = try #require(((body["code"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["code"] as? String)
        let byCode = try SearchQuery.parse([("code", code), ("_sort", "_id")], type: "Observation")
        let before = try await store!.entries.search(type: "Observation", query: byCode).resources.map(\.id)
        #expect(before.contains(first.id))
        #expect(try await store!.entries.reindexSearchTerms(batchSize: 5) == 12)
        #expect(try await store!.entries.search(type: "Observation", query: byCode).resources.map(\.id) == before)
        #expect(try await store!.entries.reindexSearchTerms(batchSize: 5) == nil)
        #expect(try await store!.outbox.counts()[.queued] == 1)
        let queued = try #require(try await store!.outbox.pendingWrite(type: "Observation", id: "fx-1"))
        #expect(queued.item.key == "fixture-1")
        #expect(store!.entries.quarantinedEntries == 0)
        store = nil

        // Every migration is recorded, and the tables the old layout lacked are there.
        let db = try DatabaseQueue(path: "\(dir)/edge.sqlite")
        let applied = try await db.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
        #expect(applied == ["v1-tables", "v2-quarantine", "v3-eviction", "v4-policy", "v5-search-index"])
        #expect(try await db.read { try $0.tableExists("quarantine") && $0.tableExists("policy") })
        try await db.close()

        // Opening again changes nothing.
        store = try EdgeStore(path: "\(dir)/edge.sqlite", tenant: "st-mary", kek: kek, clock: SystemWallClock())
        #expect(try await store!.entries.count() == 12)
    }
}
