import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Testing

/// Change batches and snapshot pages are bounded by bytes as well as by count.
@Suite struct OriginStoreBatchBytesTests {
    let dir = TempDir()
    let store: SQLiteOriginStore

    init() throws {
        store = try SQLiteOriginStore(path: dir.path + "/origin.sqlite", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
    }

    /// Writes `count` Patients of ~`size` bytes each.
    func writeLarge(_ count: Int, size: Int) async throws {
        let text = String(repeating: "x", count: size)
        for i in 0..<count {
            _ = try await store.write(
                tenant: "a",
                .update(
                    type: "Patient", id: "p\(i)", resource: try resource(#"{"resourceType":"Patient","text":{"div":"\#(text)"}}"#),
                    ifMatch: nil))
        }
    }

    @Test func changeBatchEndsWithTheChangeThatReachesTheByteBound() async throws {
        try await writeLarge(6, size: 100_000)
        let first = try await store.changes(tenant: "a", after: 0, limit: 500, maxBytes: 250_000, lane: nil)
        #expect(first.map(\.lsn) == [1, 2, 3])
        // A resource larger than the bound still goes, alone.
        let alone = try await store.changes(tenant: "a", after: 3, limit: 500, maxBytes: 1_000, lane: nil)
        #expect(alone.map(\.lsn) == [4])
        let rest = try await store.changes(tenant: "a", after: 4, limit: 500, maxBytes: 1 << 20, lane: nil)
        #expect(rest.map(\.lsn) == [5, 6])
        // The count bound still holds.
        #expect(try await store.changes(tenant: "a", after: 0, limit: 2, maxBytes: 1 << 20, lane: nil).count == 2)
    }

    @Test func snapshotPagesAreBoundedByBytes() async throws {
        try await writeLarge(5, size: 100_000)
        let snapshot = try await store.snapshot(tenant: "a")
        var pages: [Int] = []
        var ids = Set<String>()
        while true {
            let page = try await snapshot.next(limit: 500, maxBytes: 150_000)
            if page.isEmpty { break }
            pages.append(page.count)
            ids.formUnion(page.map(\.id))
        }
        #expect(pages == [2, 2, 1])
        #expect(ids.count == 5)
    }
}
