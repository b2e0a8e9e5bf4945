import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheHTTP
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle

/// Resident memory of this process (kB), from /proc/self/status.
func residentKilobytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}

/// Cached-read latency and memory at growing cache sizes, and an edge restart to its first
/// served read (over HTTPS, origin away) at the largest size.
func benchScale(size benchSize: BenchSize, repositoryRoot: String, sizes chosen: [Int]? = nil) async throws -> [String] {
    let sizes = chosen ?? benchSize.pick(full: [10_000, 100_000, 1_000_000], quick: [10_000, 100_000], smoke: [2_000])
    let dir = makeTempDir("scale")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try BenchNodes.makePKI(in: dir, repositoryRoot: repositoryRoot)
    let kek = try KeyEncryptionKey.generate()
    try kek.write(toNewFile: dir + "/edge.kek")
    try FileManager.default.createDirectory(atPath: dir + "/edge-data", withIntermediateDirectories: true)
    var lines: [String] = []
    var store: EdgeStore? = try EdgeStore(path: dir + "/edge-data/edge.sqlite", tenant: "bench", kek: kek, clock: SystemWallClock())
    var filled = 0
    var lsn: Int64 = 0
    for size in sizes {
        let fillStart = ContinuousClock.now
        while filled < size {
            let batch = (filled..<min(size, filled + 1000)).map { n -> Change in
                lsn += 1
                return Change(lsn: lsn, resource: resourceVersion(n, lsn: lsn))
            }
            try await store!.stream.apply(batch, checkpoint: lsn, isResident: { _ in false })
            filled += batch.count
        }
        let fill = milliseconds(ContinuousClock.now - fillStart) / 1000
        var samples: [Double] = []
        for _ in 0..<benchSize.pick(full: 5000, quick: 5000, smoke: 500) {
            let id = "obs-\(Int.random(in: 0..<size))"
            let t = ContinuousClock.now
            guard try await store!.entries.get(type: "Observation", id: id) != nil else { throw BenchError("\(id) missing") }
            samples.append(milliseconds(ContinuousClock.now - t))
        }
        let p = Percentiles(samples)
        let file = ((try? FileManager.default.attributesOfItem(atPath: dir + "/edge-data/edge.sqlite")[.size] as? Int) ?? 0) / 1_048_576
        lines.append(
            String(
                format:
                    "cached read from the sealed store at %d entries: p50 %.3f ms, p99 %.3f ms; RSS %d MB; file %d MB (filled in %.0f s)",
                size, p.p50, p.p99, residentKilobytes() / 1024, file, fill))
    }
    store = nil

    // Restart: a new edge runtime on the same data folder, origin away; time to the first read served over HTTPS.
    let port = Demo.freePort(preferred: 0)
    let edgeConfig = try BenchNodes.edge(
        in: dir, api: "127.0.0.1:\(port)", originURL: "https://127.0.0.1:1", originKeys: "request_timeout_ms: 1000, connect_timeout_ms: 200"
    )
    // A client with the tenant's client certificate, pointed at the edge's API.
    let clientConfig = try BenchNodes.client(in: dir, url: "https://127.0.0.1:\(port)")
    var logger = Logger(label: "bench")
    logger.logLevel = ProcessInfo.processInfo.environment["EDGECACHE_BENCH_LOG"] != nil ? .info : .critical
    let client = try OriginClient(config: clientConfig, peer: .anyPeer)
    let wal = ((try? FileManager.default.attributesOfItem(atPath: dir + "/edge-data/edge.sqlite-wal")[.size] as? Int) ?? 0) / 1_048_576
    let start = ContinuousClock.now
    let runtime = try NodeRuntime(config: edgeConfig, logger: logger)
    let opened = milliseconds(ContinuousClock.now - start)
    let group = ServiceGroup(configuration: .init(services: runtime.services.map { .init(service: $0) }, logger: logger))
    let task = Task { try await group.run() }
    var firstRead: Double?
    let deadline = ContinuousClock.now + .seconds(60)
    while firstRead == nil, ContinuousClock.now < deadline {
        if let reply = try? await client.send(method: .GET, path: "/fhir/Observation/obs-\(sizes.last! / 2)"), reply.status == 200 {
            firstRead = milliseconds(ContinuousClock.now - start)
        } else {
            try await Task.sleep(for: .milliseconds(5))
        }
    }
    await group.triggerGracefulShutdown()
    _ = try? await task.value
    await runtime.shutdown()
    await client.shutdown()
    lines.append(
        String(
            format:
                "edge restart -> first read served over HTTPS at %d cached entries (origin away): %.0f ms (target < 1000 ms; opening the stores %.0f ms, WAL at start %d MB)",
            sizes.last!, firstRead ?? -1, opened, wal))
    return lines
}
