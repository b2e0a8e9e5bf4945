import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Testing

/// A temporary folder removed at the end of a test.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "edgecache-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func resource(_ json: String, type: String = "Patient", id: String? = nil) throws -> JSONObject {
    try FHIRResource.parse(body: Array(json.utf8), type: type, urlID: id)
}

@Suite struct OriginStoreTests {
    let dir = TempDir()
    let store: SQLiteOriginStore

    init() throws {
        store = try SQLiteOriginStore(path: dir.path + "/origin.sqlite", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
    }

    @Test func writesVersionsHistoryAndChangesInOrder() async throws {
        let created = try await store.write(tenant: "a", .create(type: "Patient", resource: try resource(#"{"resourceType":"Patient"}"#)))
        let id = try #require(created.version?.id)
        #expect(created.created && created.version?.version == 1 && created.lsn == 1)
        let updated = try await store.write(
            tenant: "a", .update(type: "Patient", id: id, resource: try resource(#"{"resourceType":"Patient","active":true}"#), ifMatch: 1))
        #expect(!updated.created && updated.version?.version == 2 && updated.lsn == 2)
        #expect(try await store.read(tenant: "a", type: "Patient", id: id)?.version == 2)
        #expect(try await store.vread(tenant: "a", type: "Patient", id: id, version: 1)?.version == 1)
        #expect(try await store.history(tenant: "a", type: "Patient", id: id).map(\.version) == [2, 1])
        let changes = try await store.changes(tenant: "a", after: 0, limit: 10)
        #expect(changes.map(\.lsn) == [1, 2])
        #expect(changes.map(\.resource.version) == [1, 2])
        #expect(store.headLSN == 2)
    }

    @Test func ifMatchMismatchIsRefusedAndChangesNothing() async throws {
        _ = try await store.write(
            tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        await #expect {
            try await store.write(
                tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: 5))
        } throws: { ($0 as? FHIRError)?.status == 412 }
        #expect(store.headLSN == 1)
    }

    @Test func deleteLeavesATombstoneAndRecreateCounts() async throws {
        _ = try await store.write(
            tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        let deleted = try await store.write(tenant: "a", .delete(type: "Patient", id: "p", ifMatch: nil))
        #expect(deleted.version?.deleted == true && deleted.version?.version == 2)
        #expect(try await store.read(tenant: "a", type: "Patient", id: "p")?.deleted == true)
        let again = try await store.write(tenant: "a", .delete(type: "Patient", id: "p", ifMatch: nil))
        #expect(again.version == nil && again.lsn == 0)
        let recreated = try await store.write(
            tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        #expect(recreated.created && recreated.version?.version == 3)
    }

    @Test func tenantsAreIsolated() async throws {
        _ = try await store.write(
            tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        #expect(try await store.read(tenant: "b", type: "Patient", id: "p") == nil)
        #expect(try await store.changes(tenant: "b", after: 0, limit: 10).isEmpty)
        #expect(try await store.search(tenant: "b", type: "Patient", query: SearchQuery()).resources.isEmpty)
    }

    @Test func searchesByIDIdentifierPatientAndLastUpdated() async throws {
        for i in 0..<5 {
            _ = try await store.write(
                tenant: "a",
                .update(
                    type: "Observation", id: "o\(i)",
                    resource: try resource(
                        #"{"resourceType":"Observation","identifier":[{"system":"urn:x","value":"v\#(i)"}],"subject":{"reference":"Patient/p\#(i % 2)"}}"#,
                        type: "Observation"), ifMatch: nil))
        }
        func ids(_ params: [(String, String)]) async throws -> [String] {
            try await store.search(tenant: "a", type: "Observation", query: try SearchQuery.parse(params, type: "Observation")).resources
                .map(\.id).sorted()
        }
        #expect(try await ids([("_id", "o1,o3")]) == ["o1", "o3"])
        #expect(try await ids([("identifier", "urn:x|v2")]) == ["o2"])
        #expect(try await ids([("identifier", "v4")]) == ["o4"])
        #expect(try await ids([("patient", "p0")]) == ["o0", "o2", "o4"])
        #expect(try await ids([("subject", "Patient/p1"), ("identifier", "v1,v2")]) == ["o1"])
        #expect(try await ids([("_lastUpdated", "lt2000-01-01")]) == [])
        #expect(try await ids([("_lastUpdated", "ge2000-01-01")]).count == 5)
        let page = try await store.search(
            tenant: "a", type: "Observation", query: try SearchQuery.parse([("_count", "2"), ("_offset", "2")], type: "Observation"))
        #expect(page.resources.count == 2 && page.total == 5 && page.hasMore)
        #expect(try await ids([("patient", "p9")]) == [])
    }

    @Test func compactedLogAnswersGoneAndSnapshotHasEverything() async throws {
        for i in 0..<30 {
            _ = try await store.write(
                tenant: "a",
                .update(type: "Patient", id: "p\(i % 10)", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        }
        let floor = try await store.compactLog(keep: 10)
        #expect(floor == 20)
        await #expect(throws: LogGoneError.self) { try await store.changes(tenant: "a", after: 5, limit: 10) }
        #expect(try await store.changes(tenant: "a", after: 20, limit: 100).count == 10)
        let snapshot = try await store.snapshot(tenant: "a")
        #expect(snapshot.lsn == 30)
        var all: [ResourceVersion] = []
        while true {
            let page = try await snapshot.next(limit: 3)
            if page.isEmpty { break }
            all += page
        }
        #expect(all.count == 10 && all.allSatisfy { $0.version == 3 })
    }

    @Test func eachTenantHasItsOwnHeadAndLogFloor() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/heads.sqlite"
        let store = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock())
        func put(_ tenant: String, _ id: String) async throws -> Int64 {
            try await store.write(
                tenant: tenant, .update(type: "Patient", id: id, resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil)
            ).lsn
        }
        let quiet = try await put("a", "a1")  // LSN 1
        for i in 0..<20 { _ = try await put("b", "b\(i % 5)") }  // LSN 2...21
        #expect(store.headLSN == 21 && store.tenantHeadLSN("a") == quiet && store.tenantHeadLSN("b") == 21)
        #expect(store.tenantHeadLSN("nobody") == 0)
        // Compaction past tenant a's only change: a's log still reaches back to a's own position
        // (no change of a after it was dropped), and a's head stays where it was.
        #expect(try await store.compactLog(keep: 5) == 16)
        #expect(try await store.changes(tenant: "a", after: quiet, limit: 10).isEmpty)
        await #expect(throws: LogGoneError.self) { try await store.changes(tenant: "a", after: 0, limit: 10) }
        await #expect(throws: LogGoneError.self) { try await store.changes(tenant: "b", after: 10, limit: 10) }
        #expect(try await store.changes(tenant: "b", after: 16, limit: 10).count == 5)
        // A position past the tenant's newest change is one the origin never gave it.
        await #expect(throws: LogGoneError.self) { try await store.changes(tenant: "a", after: 5, limit: 10) }
        #expect(try await store.snapshot(tenant: "a").lsn == quiet)
        // The heads survive a restart, the compacted tenant's included.
        let reopened = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock())
        #expect(reopened.tenantHeadLSN("a") == quiet && reopened.tenantHeadLSN("b") == 21 && reopened.headLSN == 21)
    }

    @Test func refusesAnotherKEK() async throws {
        _ = try await store.write(
            tenant: "a", .update(type: "Patient", id: "p", resource: try resource(#"{"resourceType":"Patient"}"#), ifMatch: nil))
        // Another KEK is refused when the store opens, not on a tenant's first request.
        #expect(throws: (any Error).self) {
            try SQLiteOriginStore(path: dir.path + "/origin.sqlite", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
        }
    }
}
