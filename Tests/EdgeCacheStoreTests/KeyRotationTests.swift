import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import EdgeCacheTestSupport
import Foundation
import Synchronization
import Testing

final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

final class Flag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}

/// Rotation, re-sealing, KEK rotation and shredding, with a second store instance on the same
/// file standing in for the `edgecache keys` process beside a running node.
@Suite struct KeyRotationTests {
    let dir = TempDir()

    func patient(_ i: Int) throws -> JSONObject {
        try resource(#"{"resourceType":"Patient","identifier":[{"value":"MRN-\#(i)"}],"name":[{"family":"Family\#(i)"}]}"#, id: "p\(i)")
    }

    @Test func rotationUnderConcurrentReadersResealsEverythingWithoutAFailedRead() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/origin.sqlite"
        let node = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock())
        let count = 400
        for i in 0..<count {
            _ = try await node.write(tenant: "a", .update(type: "Patient", id: "p\(i)", resource: try patient(i), ifMatch: nil))
        }
        for i in 0..<50 {  // some history too
            _ = try await node.write(tenant: "a", .update(type: "Patient", id: "p\(i)", resource: try patient(i), ifMatch: nil))
        }
        let cli = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock()).keyMaintenance
        #expect(try await cli.versionsInUse(tenant: "a") == [1: count + 50])

        let stop = Flag()
        let reads = Counter()
        let failures = Counter()
        let readers = (0..<4).map { _ in
            Task {
                while !stop.value {
                    let i = Int.random(in: 0..<count)
                    do {
                        let found = try await node.read(tenant: "a", type: "Patient", id: "p\(i)")
                        if found?.json.isEmpty != false { failures.add() }
                        if i < 50, try await node.history(tenant: "a", type: "Patient", id: "p\(i)").count != 2 {
                            failures.add()
                        }
                    } catch {
                        failures.add()
                    }
                    reads.add()
                    await Task.yield()  // GRDB reads do not suspend: leave the rotation a thread
                }
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        let version = try await cli.rotate(tenant: "a")
        #expect(version == 2)
        let done = try await cli.reseal(tenant: "a", batchSize: 32)
        stop.set()
        for reader in readers { await reader.value }

        #expect(failures.value == 0)
        #expect(reads.value > 100)
        #expect(done.resealed == count + 50)
        #expect(try await cli.versionsInUse(tenant: "a") == [2: count + 50])
        // The node picks up the rotation at its next write: new writes use version 2.
        _ = try await node.write(tenant: "a", .create(type: "Patient", resource: try patient(9999)))
        #expect(try await cli.versionsInUse(tenant: "a") == [2: count + 51])
        // Version 1 is retired; lookups still work (the index key did not change).
        #expect(try await cli.retireUnused(tenant: "a") == [1])
        #expect(try sqliteQuery(path, "SELECT version FROM data_keys WHERE tenant = 'a' ORDER BY version") == "0\n2")
        let reopened = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock())
        #expect(try await reopened.read(tenant: "a", type: "Patient", id: "p7")?.version == 2)
        let page = try await reopened.search(
            tenant: "a", type: "Patient", query: try SearchQuery.parse([("identifier", "MRN-3")], type: "Patient"))
        #expect(page.resources.map(\.id) == ["p3"])
    }

    @Test func edgeEntriesOutboxConflictsAndAuditAreResealed() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/edge.sqlite"
        let node = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock())
        let changes = (1...100).map { i in
            Change(
                lsn: Int64(i),
                resource: ResourceVersion(
                    type: "Observation", id: "o\(i)", version: 1, lastUpdated: 1000, deleted: false,
                    json: Array(#"{"resourceType":"Observation","id":"o\#(i)","status":"final"}"#.utf8)))
        }
        try await node.stream.apply(changes, checkpoint: 100, isResident: { _ in false })
        let item = ReplayItem(key: "k1", method: .put, type: "Observation", id: "o1", ifMatch: 1, resource: changes[0].resource.json)
        let item2 = ReplayItem(key: "k2", method: .put, type: "Observation", id: "o2", ifMatch: nil, resource: changes[1].resource.json)
        let outcomes = try await node.outbox.enqueue(
            [EnqueueRequest(item: item, fingerprint: [1]), EnqueueRequest(item: item2, fingerprint: [2])], maxQueued: 10)
        guard case .queued(let entry, false) = outcomes[0] else { Issue.record("not queued"); return }
        try await node.outbox.complete([(entry, .conflict(origin: changes[0].resource))], maxAttempts: 3)

        let cli = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock()).keyMaintenance
        #expect(try await cli.versionsInUse(tenant: "a") == [1: 103])
        #expect(try await cli.rotate(tenant: "a") == 2)
        #expect(try await cli.reseal(tenant: "a").resealed == 103)
        #expect(try await cli.versionsInUse(tenant: "a") == [2: 103])
        #expect(try await cli.retireUnused(tenant: "a") == [1])
        // The running store reads every kind of entry under the new version.
        #expect(try await node.entries.get(type: "Observation", id: "o42")?.resource.json == changes[41].resource.json)
        #expect(try await node.outbox.list(states: [.queued, .review]).map(\.item.key) == ["k1", "k2"])
        #expect(try await node.outbox.conflicts().first?.originVersion?.json == changes[0].resource.json)
        // ...and its own writes use it.
        try await node.entries.put(
            ResourceVersion(type: "Observation", id: "o1", version: 2, lastUpdated: 2000, deleted: false, json: [0x7B, 0x7D]))
        _ = try await node.outbox.enqueue(
            [
                EnqueueRequest(
                    item: ReplayItem(key: "k3", method: .delete, type: "Observation", id: "o3", ifMatch: nil, resource: []),
                    fingerprint: [3])
            ], maxQueued: 10)
        #expect(try await cli.versionsInUse(tenant: "a") == [2: 104])
        #expect(node.keys.version == 2)
    }

    @Test func auditChainStillVerifiesAfterResealAndAppendsFromTwoProcessesChain() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/audit.sqlite"
        let node = try AuditStore(path: path, kek: kek, clock: SystemWallClock())
        func record(_ n: Int) -> AuditRecord {
            AuditRecord(
                time: Int64(n), action: "read", outcome: 200, actor: "client:a", tenant: "a", resource: "Patient/p\(n)",
                policyVersion: "v", node: "edge-1", requestID: "r\(n)")
        }
        try await node.append((1...30).map(record))
        let cliStore = try AuditStore(path: path, kek: kek, clock: SystemWallClock())
        let cli = cliStore.keyMaintenance
        // (The CLI records a key operation through this connection just before rotating.)
        try await cliStore.append([.keyOperation(.rotate, tenant: "a", keyVersion: 2, node: "edge-1", time: 98)])
        #expect(try await cli.rotate(tenant: "_audit") == 2)
        #expect(try await cli.reseal(tenant: "_audit", batchSize: 7).resealed == 31)
        try await cliStore.append([.keyOperation(.rotate, tenant: "_audit", keyVersion: 2, node: "edge-1", time: 99)])
        try await node.append((31...40).map(record))
        #expect(try await cli.retireUnused(tenant: "_audit") == [1])
        let verified = try await node.verify()
        #expect(verified.records == 42 && verified.problems.isEmpty, "\(verified.problems)")
        let actions = try await node.records().map(\.record.action)
        #expect(actions.filter { $0 == "key-rotate" }.count == 2 && actions.count == 42)
        #expect(try await cli.versionsInUse(tenant: "_audit") == [2: 42])
    }

    @Test func shreddingATenantDestroysItsKeysAndEntriesAndLeavesOthersAlone() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/origin.sqlite"
        let node = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock())
        for i in 0..<20 {
            _ = try await node.write(tenant: "a", .update(type: "Patient", id: "p\(i)", resource: try patient(i), ifMatch: nil))
            _ = try await node.write(tenant: "b", .update(type: "Patient", id: "p\(i)", resource: try patient(i), ifMatch: nil))
        }
        let cli = try SQLiteOriginStore(path: path, kek: kek, clock: SystemWallClock()).keyMaintenance
        _ = try await cli.rotate(tenant: "a")  // so there are several key rows, and the index key row
        let wrappedKeys = try sqliteQuery(path, "SELECT wrapped FROM data_keys WHERE tenant = 'a'").split(separator: "\n")
        let blobs = try sqliteQuery(path, "SELECT blob FROM history WHERE tenant = 'a'").split(separator: "\n")
        #expect(wrappedKeys.count == 3 && blobs.count == 20)

        #expect(try await cli.shred(tenant: "a") == 3)

        #expect(try sqliteQuery(path, "SELECT COUNT(*) FROM data_keys WHERE tenant = 'a'") == "0")
        #expect(try sqliteQuery(path, "SELECT COUNT(*) FROM history WHERE tenant = 'a'") == "0")
        #expect(try sqliteQuery(path, "SELECT COUNT(*) FROM resources WHERE tenant = 'a'") == "0")
        #expect(try await cli.versionsInUse(tenant: "a").isEmpty)
        // No byte of the old wrapped keys or sealed entries is left in the files (secure_delete, WAL truncated).
        var bytes = Data()
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasPrefix("origin.sqlite") {
            bytes += try Data(contentsOf: URL(fileURLWithPath: dir.path + "/" + file))
        }
        for hex in wrappedKeys + blobs.prefix(5) {
            let needle = Data(
                stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
                    let start = hex.index(hex.startIndex, offsetBy: i)
                    return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
                }.prefix(40))
            #expect(bytes.range(of: needle) == nil)
        }
        // The running node serves nothing of a, refuses its writes, and b is untouched.
        #expect(try await node.read(tenant: "a", type: "Patient", id: "p1") == nil)
        await #expect(throws: TenantShreddedError.self) {
            try await node.write(tenant: "a", .create(type: "Patient", resource: try patient(1)))
        }
        await #expect(throws: TenantShreddedError.self) { _ = try await cli.rotate(tenant: "a") }
        #expect(try await node.read(tenant: "b", type: "Patient", id: "p19")?.version == 1)
        #expect(try await cli.versionsInUse(tenant: "b") == [1: 20])
    }

    @Test func shreddingOnAnEdgeIsForItsOwnTenantOnly() async throws {
        let kek = try KeyEncryptionKey.generate()
        let path = dir.path + "/edge.sqlite"
        let node = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock())
        try await node.entries.put(
            ResourceVersion(type: "Patient", id: "p1", version: 1, lastUpdated: 1, deleted: false, json: [0x7B, 0x7D]))
        await #expect(throws: StoreError.self) { _ = try await node.keyMaintenance.shred(tenant: "b") }
        #expect(try await node.keyMaintenance.shred(tenant: "a") == 1)
        #expect(try await node.entries.get(type: "Patient", id: "p1") == nil)
        await #expect(throws: TenantShreddedError.self) {
            try await node.entries.put(
                ResourceVersion(type: "Patient", id: "p2", version: 1, lastUpdated: 1, deleted: false, json: [0x7B, 0x7D]))
        }
        #expect(throws: TenantShreddedError.self) { _ = try EdgeStore(path: path, tenant: "a", kek: kek, clock: SystemWallClock()) }
    }

    @Test func rotatingTheKEKRewrapsEveryKeySoOnlyTheNewOneOpensTheStore() async throws {
        let old = try KeyEncryptionKey.generate()
        let new = try KeyEncryptionKey.generate()
        let path = dir.path + "/origin.sqlite"
        do {
            let store = try SQLiteOriginStore(path: path, kek: old, clock: SystemWallClock())
            for tenant in ["a", "b"] {
                _ = try await store.write(tenant: tenant, .update(type: "Patient", id: "p1", resource: try patient(1), ifMatch: nil))
            }
            _ = try await store.keyMaintenance.rotate(tenant: "a")
        }
        #expect(try KeyMaintenance.rewrapKeys(path: path, from: old, to: new) == 4)
        #expect(try KeyMaintenance.rewrapKeys(path: path, from: old, to: new) == 0)  // a repeat changes nothing
        #expect(throws: CryptoError.self) { _ = try SQLiteOriginStore(path: path, kek: old, clock: SystemWallClock()) }
        let store = try SQLiteOriginStore(path: path, kek: new, clock: SystemWallClock())
        #expect(try await store.read(tenant: "a", type: "Patient", id: "p1")?.json.isEmpty == false)
        #expect(try await store.read(tenant: "b", type: "Patient", id: "p1")?.version == 1)
        // An edge and an audit file refuse the old KEK too.
        let edgePath = dir.path + "/edge.sqlite"
        _ = try EdgeStore(path: edgePath, tenant: "a", kek: old, clock: SystemWallClock())
        #expect(try KeyMaintenance.rewrapKeys(path: edgePath, from: old, to: new) == 1)
        #expect(throws: CryptoError.self) { _ = try EdgeStore(path: edgePath, tenant: "a", kek: old, clock: SystemWallClock()) }
        _ = try EdgeStore(path: edgePath, tenant: "a", kek: new, clock: SystemWallClock())
    }
}
