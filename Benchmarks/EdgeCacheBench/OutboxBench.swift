import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// Latency percentiles of a set of samples (milliseconds).
struct Percentiles {
    let p50: Double
    let p99: Double
    let count: Int

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        count = sorted.count
        p50 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count / 2)]
        p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
    }
}

func milliseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

func makeTempDir(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "edgecache-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func item(_ n: Int, key: String) -> ReplayItem {
    let id = "bench-\(n)"
    let json =
        #"{"resourceType":"Observation","id":"\#(id)","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p\#(n % 1000)"},"valueQuantity":{"value":\#(60 + n % 40),"unit":"beats/minute"}}"#
    return ReplayItem(key: key, method: .put, type: "Observation", id: id, ifMatch: nil, resource: Array(json.utf8))
}

/// Acknowledged-enqueue latency at 1, 16 and 64 concurrent writers, against a bare
/// synchronous=FULL single-row commit measured in the same run.
func benchEnqueue(size: BenchSize) async throws -> [String] {
    var lines: [String] = []
    let dir = makeTempDir("enqueue")
    defer { try? FileManager.default.removeItem(atPath: dir) }

    // Floor: one INSERT per transaction, WAL, synchronous=FULL.
    var configuration = Configuration()
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
    let bare = try DatabaseQueue(path: dir + "/bare.sqlite", configuration: configuration)
    try await bare.write { db in try db.execute(sql: "CREATE TABLE t(id INTEGER PRIMARY KEY, blob BLOB)") }
    try await bare.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let blob = Data(repeating: 7, count: 600)
    var bareSamples: [Double] = []
    let bareCount = size.pick(full: 1000, quick: 200, smoke: 50)
    for _ in 0..<bareCount {
        let start = ContinuousClock.now
        try await bare.write { db in try db.execute(sql: "INSERT INTO t(blob) VALUES (?)", arguments: [blob]) }
        bareSamples.append(milliseconds(ContinuousClock.now - start))
    }
    let floor = Percentiles(bareSamples)
    lines.append(String(format: "bare FULL commit (1 writer): p50 %.3f ms, p99 %.3f ms", floor.p50, floor.p99))

    let store = try EdgeStore(path: dir + "/edge.sqlite", tenant: "bench", kek: try KeyEncryptionKey.generate(), clock: SystemWallClock())
    let queue = OutboxQueue(store: store, maxEntries: 10_000_000)
    var serial = 0
    for writers in [1, 16, 64] {
        let perWriter = max(size.pick(full: 60, quick: 20, smoke: 2), size.pick(full: 2000, quick: 400, smoke: 64) / writers)
        let base = serial
        serial += writers * perWriter
        let start = ContinuousClock.now
        let samples = try await withThrowingTaskGroup(of: [Double].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var samples: [Double] = []
                    for k in 0..<perWriter {
                        let n = base + w * perWriter + k
                        let t = ContinuousClock.now
                        _ = try await queue.enqueue(EnqueueRequest(item: item(n, key: "k\(n)"), fingerprint: Array("k\(n)".utf8)))
                        samples.append(milliseconds(ContinuousClock.now - t))
                    }
                    return samples
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let elapsed = milliseconds(ContinuousClock.now - start) / 1000
        let p = Percentiles(samples)
        let rate = Double(samples.count) / elapsed
        lines.append(
            String(
                format: "outbox enqueue, %d writer(s): p50 %.3f ms, p99 %.3f ms, %.0f writes/s (p99 %.2fx the bare FULL commit p99)",
                writers, p.p50, p.p99, rate, p.p99 / max(floor.p99, 0.001)))
    }
    return lines
}

/// Drain rate of a backlog: the outbox filled while the origin is away, then an origin started
/// and the edge's replayer timed until the outbox is empty.
func benchDrain(backlog: Int, repositoryRoot: String) async throws -> [String] {
    let dir = makeTempDir("drain")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try BenchNodes.makePKI(in: dir, repositoryRoot: repositoryRoot)
    try KeyEncryptionKey.generate().write(toNewFile: dir + "/origin.kek")
    try KeyEncryptionKey.generate().write(toNewFile: dir + "/edge.kek")
    let peerPort = 40000 + Int(getpid() % 20000)
    let origin = try BenchNodes.origin(in: dir, peerPort: peerPort)
    let edge = try BenchNodes.edge(in: dir, originURL: "https://127.0.0.1:\(peerPort)")
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let edgeRuntime = try NodeRuntime(config: edge, logger: logger)
    let store = edgeRuntime.edgeStore!
    // Fill the backlog while no origin exists.
    let fillStart = ContinuousClock.now
    var n = 0
    while n < backlog {
        let batch = (n..<min(backlog, n + 2000)).map { EnqueueRequest(item: item($0, key: "d\($0)"), fingerprint: Array("d\($0)".utf8)) }
        _ = try await store.outbox.enqueue(batch, maxQueued: 100_000_000)
        n += batch.count
    }
    let fill = milliseconds(ContinuousClock.now - fillStart) / 1000
    let originRuntime = try NodeRuntime(config: origin, logger: logger)
    let group = ServiceGroup(
        configuration: .init(services: (originRuntime.services + edgeRuntime.services).map { .init(service: $0) }, logger: logger))
    let start = ContinuousClock.now
    let task = Task { try await group.run() }
    var lastReport = ContinuousClock.now
    while true {
        try await store.outbox.refreshQueuedCount()
        if store.outbox.queuedCount == 0 { break }
        if ContinuousClock.now - lastReport > .seconds(10) {
            print("  drain: \(store.outbox.queuedCount) left")
            lastReport = ContinuousClock.now
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    let drain = milliseconds(ContinuousClock.now - start) / 1000
    await group.triggerGracefulShutdown()
    _ = try? await task.value
    await edgeRuntime.shutdown()
    return [
        String(format: "outbox backlog fill: %d writes in %.1f s (%.0f writes/s, batched enqueue)", backlog, fill, Double(backlog) / fill),
        String(
            format: "outbox drain: %d-write backlog in %.1f s (%.0f writes/s, origin start included)", backlog, drain,
            Double(backlog) / drain),
    ]
}
