import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Testing

func version(_ type: String, _ id: String, _ v: Int64, deleted: Bool = false, extra: String = "") -> ResourceVersion {
    ResourceVersion(
        type: type, id: id, version: v, lastUpdated: 1000 * v, deleted: deleted,
        json: deleted ? [] : Array(#"{"resourceType":"\#(type)","id":"\#(id)","meta":{"versionId":"\#(v)"}\#(extra)}"#.utf8))
}

@Suite struct EdgeStoreTests {
    let dir = TempDir()
    let kek: KeyEncryptionKey
    let store: EdgeStore
    static let full: @Sendable (String) -> Bool = { _ in false }

    init() throws {
        kek = try KeyEncryptionKey.generate()
        store = try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "a", kek: kek, clock: SystemWallClock())
    }

    @Test func appliesBatchWithCheckpointAndSkipsRedelivery() async throws {
        let batch = [Change(lsn: 1, resource: version("Patient", "p1", 1)), Change(lsn: 2, resource: version("Patient", "p1", 2))]
        var counters = try await store.stream.apply(batch, checkpoint: 2, isResident: Self.full)
        #expect(counters.checkpoint == 2 && counters.eventsApplied == 2 && counters.eventsSkipped == 0)
        counters = try await store.stream.apply(batch, checkpoint: 2, isResident: Self.full)
        #expect(counters.eventsApplied == 2 && counters.eventsSkipped == 2)
        #expect(try await store.entries.get(type: "Patient", id: "p1")?.resource.version == 2)
        // An older version arriving later never overwrites a newer one.
        counters = try await store.stream.apply(
            [Change(lsn: 3, resource: version("Patient", "p1", 1))], checkpoint: 3, isResident: Self.full)
        #expect(counters.eventsSkipped == 3 && counters.checkpoint == 3)
        #expect(try await store.entries.get(type: "Patient", id: "p1")?.resource.version == 2)
    }

    @Test func hotTierNeverOutlivesTheSealedRow() async throws {
        let path = dir.path + "/hot.sqlite"
        let node = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock(), hotBytes: 1 << 20)
        let p1 = version("Patient", "p1", 1, extra: #","name":[{"family":"One"}]"#)
        let o1 = version("Observation", "o1", 1, extra: #","subject":{"reference":"Patient/p1"}"#)
        try await node.stream.apply([Change(lsn: 1, resource: p1), Change(lsn: 2, resource: o1)], checkpoint: 2, isResident: Self.full)
        #expect(try await node.entries.get(type: "Observation", id: "o1")?.resource == o1)
        #expect(try await node.entries.get(type: "Observation", id: "o1")?.resource == o1)
        #expect(node.entries.hot.stats.hits == 1 && node.entries.hot.stats.entries == 1)
        // A newer version from the stream: the remembered plaintext no longer matches the row.
        let o2 = version("Observation", "o1", 2, extra: #","subject":{"reference":"Patient/p1"},"status":"amended""#)
        try await node.stream.apply([Change(lsn: 3, resource: o2)], checkpoint: 3, isResident: Self.full)
        #expect(try await node.entries.get(type: "Observation", id: "o1")?.resource == o2)
        // Re-sealed under a new key version by another process (the CLI): still the right content.
        let cli = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock()).keyMaintenance
        _ = try await cli.rotate(tenant: "a")
        _ = try await cli.reseal(tenant: "a")
        let hitsBefore = node.entries.hot.stats.hits
        #expect(try await node.entries.get(type: "Observation", id: "o1")?.resource == o2)
        #expect(node.entries.hot.stats.hits == hitsBefore, "a re-sealed row must be opened again, not matched")
        #expect(try await node.entries.get(type: "Observation", id: "o1")?.resource == o2)
        #expect(node.entries.hot.stats.hits == hitsBefore + 1)
        // Deleted behind the tier's back (another connection): the read finds nothing.
        let other = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock())
        #expect(try await other.consent.purgeCompartment(patient: "p1") == 2)
        #expect(try await node.entries.get(type: "Observation", id: "o1") == nil)
        #expect(try await node.entries.get(type: "Patient", id: "p1") == nil)
        // A purge through the store itself also drops the plaintext from memory.
        try await node.entries.put(o2)
        #expect(try await node.entries.get(type: "Observation", id: "o1") != nil)
        #expect(try await node.consent.purgeCompartment(patient: "p1") == 1)
        #expect(node.entries.hot.stats.entries == 0)
    }

    @Test func keysAreUnusableAfterAShred() async throws {
        let path = dir.path + "/shred.sqlite"
        let node = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock())
        #expect(await node.keysUsable())
        _ = try await EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock()).keyMaintenance.shred(tenant: "a")
        #expect(await node.keysUsable() == false)  // what an edge's /readyz reports as keys: failed
    }

    @Test func hotTierStaysWithinItsBudget() async throws {
        let node = try EdgeStore(path: dir.path + "/budget.sqlite", tenant: "a", kek: kek, clock: SystemWallClock(), hotBytes: 64 * 1024)
        let padding = String(repeating: "x", count: 900)
        let changes = (1...200).map { Change(lsn: Int64($0), resource: version("Basic", "b\($0)", 1, extra: #","text":"\#(padding)""#)) }
        try await node.stream.apply(changes, checkpoint: 200, isResident: Self.full)
        for change in changes { #expect(try await node.entries.get(type: "Basic", id: change.resource.id)?.resource == change.resource) }
        let stats = node.entries.hot.stats
        #expect(stats.bytes <= 64 * 1024 && stats.entries > 10 && stats.entries < 200, "\(stats)")
        // The most recent reads are the ones kept.
        #expect(try await node.entries.get(type: "Basic", id: "b200") != nil)
        #expect(node.entries.hot.stats.hits == 1)
    }

    @Test func countersSurviveReopen() async throws {
        try await store.stream.apply([Change(lsn: 4, resource: version("Patient", "p1", 1))], checkpoint: 9, isResident: Self.full)
        let reopened = try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "a", kek: kek, clock: SystemWallClock())
        #expect(reopened.stream.counters == EdgeStoreCounters(checkpoint: 9, eventsApplied: 1, eventsSkipped: 0, bootstraps: 0))
        #expect(try await reopened.entries.get(type: "Patient", id: "p1")?.resource.json == version("Patient", "p1", 1).json)
    }

    @Test func residentClassesOnlyRefreshCachedEntries() async throws {
        let resident: @Sendable (String) -> Bool = { $0 == "Basic" }
        try await store.stream.apply([Change(lsn: 1, resource: version("Basic", "b1", 1))], checkpoint: 1, isResident: resident)
        #expect(try await store.entries.get(type: "Basic", id: "b1") == nil)
        try await store.entries.put(version("Basic", "b1", 1))
        try await store.stream.apply([Change(lsn: 2, resource: version("Basic", "b1", 2))], checkpoint: 2, isResident: resident)
        #expect(try await store.entries.get(type: "Basic", id: "b1")?.resource.version == 2)
    }

    @Test func snapshotReplacesEverythingAtOnce() async throws {
        try await store.stream.apply([Change(lsn: 1, resource: version("Patient", "old", 1))], checkpoint: 1, isResident: Self.full)
        try await store.stream.beginSnapshot()
        try await store.stream.stageSnapshot([version("Patient", "new", 3)])
        #expect(try await store.entries.get(type: "Patient", id: "old") != nil)
        #expect(try await store.entries.get(type: "Patient", id: "new") == nil)
        try await store.stream.finishSnapshot(lsn: 50)
        #expect(try await store.entries.get(type: "Patient", id: "old") == nil)
        #expect(try await store.entries.get(type: "Patient", id: "new")?.resource.version == 3)
        #expect(store.stream.counters.checkpoint == 50 && store.stream.counters.bootstraps == 1)
    }

    @Test func searchesLocally() async throws {
        try await store.stream.apply(
            [
                Change(lsn: 1, resource: version("Observation", "o1", 1, extra: #","subject":{"reference":"Patient/p1"}"#)),
                Change(lsn: 2, resource: version("Observation", "o2", 1, extra: #","subject":{"reference":"Patient/p2"}"#)),
                Change(lsn: 3, resource: version("Observation", "o3", 2, deleted: true)),
            ], checkpoint: 3, isResident: Self.full)
        let page = try await store.entries.search(
            type: "Observation", query: try SearchQuery.parse([("patient", "p1")], type: "Observation"))
        #expect(page.resources.map(\.id) == ["o1"])
        #expect(try await store.entries.search(type: "Observation", query: SearchQuery()).total == 2)
    }
}

/// Known data written through both stores must not appear in clear text in any SQLite file.
@Suite struct PlaintextAtRestTests {
    @Test func sqliteFilesHoldNoIdentifiersNamesOrIDs() async throws {
        let dir = TempDir()
        let secrets = ["pat-zq7x91", "Quixoticfamily", "Zebedeegiven", "MRN-55501234", "urn:oid:9.9.9.9.77"]
        let json =
            #"{"resourceType":"Patient","identifier":[{"system":"urn:oid:9.9.9.9.77","value":"MRN-55501234"}],"name":[{"family":"Quixoticfamily","given":["Zebedeegiven"]}]}"#
        let origin = try SQLiteOriginStore(
            path: dir.path + "/origin.sqlite", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
        let edge = try EdgeStore(
            path: dir.path + "/edge.sqlite", tenant: "a", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
        for v in 0..<3 {
            let result = try await origin.write(
                tenant: "a", .update(type: "Patient", id: "pat-zq7x91", resource: try resource(json, id: "pat-zq7x91"), ifMatch: nil))
            try await edge.stream.apply(
                [Change(lsn: result.lsn, resource: result.version!)], checkpoint: result.lsn, isResident: { _ in false })
            #expect(result.version?.version == Int64(v + 1))
        }
        // Queued writes and conflicts are sealed too.
        let item = ReplayItem(
            key: "key-MRN-55501234", method: .put, type: "Patient", id: "pat-zq7x91", ifMatch: 3, resource: Array(json.utf8))
        let outcomes = try await edge.outbox.enqueue([EnqueueRequest(item: item, fingerprint: Array(json.utf8))], maxQueued: 10)
        guard case .queued(let entry, false) = outcomes[0] else { Issue.record("not queued"); return }
        let originVersion = try #require(try await origin.read(tenant: "a", type: "Patient", id: "pat-zq7x91"))
        try await edge.outbox.complete([(entry, .conflict(origin: originVersion))], maxAttempts: 3)
        #expect(try await edge.outbox.conflicts().first?.originVersion?.json == originVersion.json)
        try await edge.stream.beginSnapshot()
        try await edge.stream.stageSnapshot([try #require(try await origin.read(tenant: "a", type: "Patient", id: "pat-zq7x91"))])
        // The data is really there (readable through the stores)...
        #expect(try await edge.entries.get(type: "Patient", id: "pat-zq7x91")?.resource.json.count ?? 0 > 100)
        #expect(
            try await edge.entries.search(type: "Patient", query: try SearchQuery.parse([("identifier", "MRN-55501234")], type: "Patient"))
                .resources.count
                == 1)
        // ...but no file holds it in the clear.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".sqlite") }
        #expect(files.contains("edge.sqlite-wal") && files.contains("origin.sqlite-wal"))
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/" + file))
            for secret in secrets {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) found in \(file)")
            }
        }
    }
}

@Suite struct EdgeStoreGuardTests {
    @Test func refusesAnotherTenantsDataDirAndRestoresCaughtUpTime() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        let store = try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "a", kek: kek, clock: SystemWallClock())
        try await store.stream.apply([], checkpoint: 3, isResident: { _ in false }, caughtUpAt: 1_234_567)
        #expect(throws: StoreError.self) { try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "b", kek: kek, clock: SystemWallClock()) }
        let reopened = try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "a", kek: kek, clock: SystemWallClock())
        #expect(reopened.stream.counters.caughtUpAt == 1_234_567 && reopened.stream.counters.checkpoint == 3)
    }
}
