import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Synchronization

/// A realistic Observation of about 2 KB (a coded vital sign with a narrative and a note).
func observation2K(_ n: Int, patient: String? = nil) -> [UInt8] {
    let note = String(repeating: "Patient resting comfortably, vitals within normal limits, reassessed by nursing. ", count: 18)
    let json =
        #"{"resourceType":"Observation","id":"obs-\#(n)","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/\#(patient ?? "p\(n % 1000)")"},"effectiveDateTime":"2026-11-22T03:00:00Z","valueQuantity":{"value":\#(60 + n % 40),"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"note":[{"text":"\#(note)\#(n)"}]}"#
    return Array(json.utf8)
}

func resourceVersion(_ n: Int, lsn: Int64) -> ResourceVersion {
    ResourceVersion(
        type: "Observation", id: "obs-\(n)", version: 1, lastUpdated: 1_800_000_000_000 + Int64(n), deleted: false, json: observation2K(n))
}

/// Stream apply at the edge (sealed, indexed, checkpointed, batches of 500) against the storage
/// floor: a bare batched SQLite insert of the same number of sealed rows of the same size.
func benchApply(size: BenchSize) async throws -> [String] {
    let count = size.pick(full: 100_000, quick: 20_000, smoke: 1_000)
    let dir = makeTempDir("apply")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let changes = (0..<count).map { Change(lsn: Int64($0 + 1), resource: resourceVersion($0, lsn: Int64($0 + 1))) }

    // Floor: the same rows sealed beforehand (not timed), inserted 500 per transaction.
    let keys = try TenantKeys.generate(tenant: "bench", version: 1)
    let sealer = Sealer(keys: keys)
    let rows = try changes.map { change -> (Data, Data) in
        let rkey = keys.lookupKey("r|Observation/\(change.resource.id)")
        let blob = try sealer.seal(try Zlib.compress(change.resource.json), aad: Sealer.aad(lookupKey: rkey, version: 1))
        return (Data(rkey), Data(blob))
    }
    let bare = try DatabasePool(path: dir + "/floor.sqlite")
    try await bare.write { db in
        try db.execute(sql: "CREATE TABLE entries(rkey BLOB PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID")
    }
    try await bare.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let floorStart = ContinuousClock.now
    for start in stride(from: 0, to: rows.count, by: 500) {
        let slice = rows[start..<min(rows.count, start + 500)]
        try await bare.write { db in
            for (rkey, blob) in slice {
                try db.cachedStatement(sql: "INSERT INTO entries(rkey, blob) VALUES (?, ?)").execute(arguments: [rkey, blob])
            }
        }
    }
    let floorSeconds = milliseconds(ContinuousClock.now - floorStart) / 1000
    let floorRate = Double(count) / floorSeconds

    // Schema floor: the same sealed rows into the edge's own tables and indexes (the type index
    // and two search terms per resource, as the store extracts for these Observations), with
    // the store's existence check, still sealed beforehand and without the store's code around it.
    let schema = try DatabasePool(path: dir + "/schema-floor.sqlite")
    try await schema.write { db in
        try db.execute(
            sql: """
                CREATE TABLE entries(rkey BLOB PRIMARY KEY, tkey BLOB NOT NULL, version INTEGER NOT NULL,
                    last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, stored_at INTEGER NOT NULL,
                    blob BLOB NOT NULL) WITHOUT ROWID;
                CREATE INDEX entries_by_type ON entries(tkey, deleted, last_updated);
                CREATE TABLE terms(term BLOB NOT NULL, rkey BLOB NOT NULL, PRIMARY KEY(term, rkey)) WITHOUT ROWID;
                CREATE INDEX terms_by_resource ON terms(rkey);
                """)
    }
    try await schema.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let tkey = Data(keys.lookupKey("t|Observation"))
    let termKeys = (0..<1000).map { p in
        [Data(keys.lookupKey("s|Observation|patient|Patient/p\(p)")), Data(keys.lookupKey("s|Observation|subject|Patient/p\(p)"))]
    }
    let schemaStart = ContinuousClock.now
    for start in stride(from: 0, to: rows.count, by: 500) {
        let range = start..<min(rows.count, start + 500)
        try await schema.write { db in
            for n in range {
                let (rkey, blob) = rows[n]
                _ = try Int64.fetchOne(db.cachedStatement(sql: "SELECT version FROM entries WHERE rkey = ?"), arguments: [rkey])
                try db.cachedStatement(sql: "INSERT OR REPLACE INTO entries VALUES (?, ?, 1, ?, 0, 0, ?)")
                    .execute(arguments: [rkey, tkey, n, blob])
                for term in termKeys[n % 1000] {
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO terms(term, rkey) VALUES (?, ?)").execute(arguments: [term, rkey])
                }
            }
        }
    }
    let schemaRate = Double(count) / (milliseconds(ContinuousClock.now - schemaStart) / 1000)

    let store = try EdgeStore(path: dir + "/edge.sqlite", tenant: "bench", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
    let applyStart = ContinuousClock.now
    for start in stride(from: 0, to: changes.count, by: 500) {
        let slice = Array(changes[start..<min(changes.count, start + 500)])
        try await store.stream.apply(slice, checkpoint: slice.last!.lsn, isResident: { _ in false })
    }
    let applySeconds = milliseconds(ContinuousClock.now - applyStart) / 1000
    let applyRate = Double(count) / applySeconds
    let size = changes.first!.resource.json.count
    return [
        String(format: "storage floor: %d sealed rows (%d B resources) in batches of 500: %.0f rows/s", count, size, floorRate),
        String(
            format:
                "schema floor: the same sealed rows into the edge's tables and indexes (type index, 2 search terms each): %.0f rows/s (%.2fx the bare floor)",
            schemaRate, schemaRate / floorRate),
        String(
            format:
                "stream apply at the edge: %d changes in batches of 500: %.0f changes/s (%.2fx the floor; target >= 0.5x; %.2fx the schema floor)",
            count, applyRate, applyRate / floorRate, applyRate / schemaRate),
    ]
}

/// An origin and an edge in this process, on loopback with a development PKI.
struct BenchPair {
    let origin: NodeRuntime
    let edge: NodeRuntime
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let dir: String

    static func start(name: String, repositoryRoot: String) async throws -> BenchPair {
        let dir = makeTempDir(name)
        try BenchNodes.makePKI(in: dir, repositoryRoot: repositoryRoot)
        try KeyEncryptionKey.generate().write(toNewFile: dir + "/origin.kek")
        try KeyEncryptionKey.generate().write(toNewFile: dir + "/edge.kek")
        let peerPort = Demo.freePort(preferred: 0)
        let origin = try BenchNodes.origin(in: dir, peerPort: peerPort)
        let edge = try BenchNodes.edge(in: dir, originURL: "https://127.0.0.1:\(peerPort)")
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let originRuntime = try NodeRuntime(config: origin, logger: logger)
        let edgeRuntime = try NodeRuntime(config: edge, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: (originRuntime.services + edgeRuntime.services).map { .init(service: $0) }, logger: logger))
        let task = Task { try await group.run() }
        let pair = BenchPair(origin: originRuntime, edge: edgeRuntime, group: group, task: task, dir: dir)
        let deadline = ContinuousClock.now + .seconds(30)
        while edgeRuntime.edgeLink?.isLive != true {
            guard ContinuousClock.now < deadline else { throw BenchError("the bench edge did not go live") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return pair
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await edge.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func json(_ bytes: [UInt8]) -> JSONObject {
    guard case .object(let o)? = try? JSONParser.parse(bytes) else { fatalError("bench JSON") }
    return o
}

/// Writes `perSecond` changes per second at the origin (batches every 10 ms) until cancelled;
/// calls `committed(lastLSN, time)` after each batch.
func backgroundWriter(
    _ store: any OriginStore, perSecond: Int, prefix: String, committed: @escaping @Sendable (Int64, ContinuousClock.Instant) -> Void
) -> Task<Void, any Error> {
    Task {
        let perTick = max(1, perSecond / 100)
        var n = 0
        var next = ContinuousClock.now
        while !Task.isCancelled {
            let writes = (0..<perTick).map { k -> BatchWrite in
                let id = n + k
                return BatchWrite(
                    operation: .update(type: "Observation", id: "\(prefix)-\(id)", resource: json(observation2K(id)), ifMatch: nil),
                    claim: IdempotencyClaim(key: "\(prefix)-\(id)", fingerprint: Array("\(prefix)-\(id)".utf8)))
            }
            n += perTick
            let results = try await store.writeBatch(tenant: "bench", writes)
            let last = results.compactMap { try? $0.get().lsn }.max() ?? 0
            committed(last, ContinuousClock.now)
            next = next + .milliseconds(10)
            let wait = next - ContinuousClock.now
            if wait > .zero { try await Task.sleep(for: wait) }
        }
    }
}

/// Origin commit → edge readable (applied with its checkpoint) at 2,000 changes/s, and consent
/// revocation propagation (origin commit → edge block) at 1,000 background changes/s.
func benchPropagation(size: BenchSize, repositoryRoot: String) async throws -> [String] {
    let pair = try await BenchPair.start(name: "propagation", repositoryRoot: repositoryRoot)
    let originStore = pair.origin.originStore!
    let edgeStore = pair.edge.edgeStore!
    var lines: [String] = []

    // 1. Commit → readable at 2k changes/s.
    let commits = Mutex<[(Int64, ContinuousClock.Instant)]>([])
    let seen = Mutex<[(Int64, ContinuousClock.Instant)]>([])
    let watcher = Task {
        var last: Int64 = 0
        while !Task.isCancelled {
            let checkpoint = edgeStore.stream.counters.checkpoint
            if checkpoint > last {
                let now = ContinuousClock.now
                seen.withLock { $0.append((checkpoint, now)) }
                last = checkpoint
            }
            try? await Task.sleep(for: .microseconds(500))
        }
    }
    let seconds = size.pick(full: 15, quick: 5, smoke: 1)
    let writer = backgroundWriter(originStore, perSecond: 2000, prefix: "prop") { lsn, at in commits.withLock { $0.append((lsn, at)) } }
    try await Task.sleep(for: .seconds(seconds))
    writer.cancel()
    _ = try? await writer.value
    try await Task.sleep(for: .seconds(2))
    watcher.cancel()
    let seenList = seen.withLock { $0 }
    var latencies: [Double] = []
    for (lsn, committedAt) in commits.withLock({ $0 }) where lsn > 0 {
        if let first = seenList.first(where: { $0.0 >= lsn }) { latencies.append(milliseconds(first.1 - committedAt)) }
    }
    let committedCount = commits.withLock { $0.count } * 20
    let p = Percentiles(latencies)
    lines.append(
        String(
            format:
                "origin commit -> edge readable, writer aiming at 2000 changes/s (achieved %.0f/s, %d changes): p50 %.1f ms, p99 %.1f ms (target p99 < 100 ms)",
            Double(committedCount) / Double(seconds), committedCount, p.p50, p.p99))

    // 2. Consent revocations at 1k background changes/s.
    let background = backgroundWriter(originStore, perSecond: 1000, prefix: "bg") { _, _ in }
    let revocations = size.pick(full: 100, quick: 50, smoke: 5)
    guard let consentGuard = pair.edge.edge?.consent else { throw BenchError("the pair's edge is not an edge") }
    let before = consentGuard.snapshot.blocks
    for i in 0..<revocations {
        let consent =
            #"{"resourceType":"Consent","status":"inactive","scope":{"text":"x"},"category":[{"text":"x"}],"patient":{"reference":"Patient/rev-\#(i)"}}"#
        _ = try await originStore.write(
            tenant: "bench", .update(type: "Consent", id: "rev-\(i)", resource: json(Array(consent.utf8)), ifMatch: nil), idempotency: nil)
        try await Task.sleep(for: .milliseconds(30))
    }
    let deadline = ContinuousClock.now + .seconds(10)
    while consentGuard.snapshot.blocks < before + revocations, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(20))
    }
    background.cancel()
    _ = try? await background.value
    let stats = consentGuard.snapshot
    lines.append(
        "consent revocation -> edge block at 1000 background changes/s (\(stats.blocks - before) of \(revocations) revocations): "
            + "p50 \(stats.quantile(0.5) ?? -1) ms, p99 \(stats.quantile(0.99) ?? -1) ms, max \(stats.maximum ?? -1) ms (target p99 < 50 ms)"
    )
    await pair.stop()
    return lines
}
