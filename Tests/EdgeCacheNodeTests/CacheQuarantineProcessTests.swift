import EdgeCacheNode
import EdgeCacheTestSupport
import Foundation
import Testing

/// Flips one bit of the sealed blob of the cache entry with the smallest lookup key, from
/// outside the process (python3's sqlite3 on the live WAL database).
func flipBitOfOneCacheEntry(_ database: String) throws {
    let script = """
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        rkey, blob = c.execute('SELECT rkey, blob FROM entries WHERE deleted = 0 ORDER BY rkey LIMIT 1').fetchone()
        blob = bytearray(blob)
        blob[len(blob) // 2] ^= 0x10
        c.execute('UPDATE entries SET blob = ? WHERE rkey = ?', (bytes(blob), rkey))
        c.commit()
        """
    guard try runPython(script, database).status == 0 else { throw TestFailure("could not corrupt \(database)") }
}

extension IntegrationSuites {
    /// A cache entry whose sealed bytes no longer authenticate (issue 13 item 6): it is
    /// quarantined, re-fetched from the origin, counted and never served; while the origin is away
    /// the edge answers 503 for it and for searches of its type, and every other entry still reads.
    @Suite struct CacheQuarantineProcessTests {
        let dir = TempDir()

        func patient(_ i: Int) -> String { #"{"resourceType":"Patient","id":"p\#(i)","name":[{"family":"Family\#(i)"}]}"# }

        func metric(_ text: String, _ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }

        @Test func aCorruptedEntryIsQuarantinedAndFetchedAgain() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = NodeProcess(
                configPath: try config.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let proxy = try await TCPProxy(targetPort: origin.ports["peer"]!)
            let edge = NodeProcess(
                configPath: try config.writeEdge(tenant: "a", originPort: proxy.port, extra: "replication: { heartbeat_ms: 200 }"),
                dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.ports["api"]!)/fhir"
            let edgeBase = "https://127.0.0.1:\(edge.ports["api"]!)"
            let count = 6
            for i in 0..<count { #expect(try await client.put(originAPI + "/Patient/p\(i)", patient(i)).status == 201) }
            // Caught up: a local search (a hit) sees every patient, and every read is a hit.
            #expect(
                try await eventually(15) {
                    let page = try await client.get(edgeBase + "/fhir/Patient?_count=50")
                    return page.header("Cache-Status")?.contains("hit") == true && (page.json["total"] as? Int) == count
                })
            for i in 0..<count { #expect(try await client.get(edgeBase + "/fhir/Patient/p\(i)").status == 200) }
            let database = dir.path + "/edge-data/edge.sqlite"

            // 1. Origin reachable. The search page holding the bad entry is answered by the origin, in full.
            try flipBitOfOneCacheEntry(database)
            let search = try await client.get(edgeBase + "/fhir/Patient?_count=50")
            #expect(search.status == 200, "\(search.status) \(search.text.prefix(300))")
            #expect((search.json["total"] as? Int) == count && search.header("Cache-Status")?.contains("fwd=") == true, "\(search.headers)")
            // Every read answers the right patient (the origin's copy of the bad one was stored again).
            for i in 0..<count {
                let read = try await client.get(edgeBase + "/fhir/Patient/p\(i)")
                #expect(read.status == 200 && read.text.contains("Family\(i)"), "p\(i): \(read.status) \(read.text.prefix(200))")
            }
            var scrape = try await client.get(edgeBase + "/metrics").text
            #expect(metric(scrape, "edgecache_cache_quarantined_total") == 1, "\(scrape)")
            #expect(metric(scrape, "edgecache_cache_quarantined_entries") == 0)
            #expect(try await client.get(edgeBase + "/fhir/Patient?_count=50").header("Cache-Status")?.contains("hit") == true)

            // 2. Origin away. The bad entry is a 503 OperationOutcome (never its bytes), its type's
            // searches are 503 (a local answer would be incomplete), every other entry still reads.
            proxy.block()
            try flipBitOfOneCacheEntry(database)
            var failed: [Int] = []
            for i in 0..<count {
                let read = try await client.get(edgeBase + "/fhir/Patient/p\(i)")
                if read.status == 200 {
                    #expect(read.text.contains("Family\(i)"))
                } else {
                    #expect(
                        read.status == 503 && read.text.contains("OperationOutcome") && read.diagnostics.contains("integrity"),
                        "\(read.text)")
                    failed.append(i)
                }
            }
            #expect(failed.count == 1, "\(failed)")
            let away = try await client.get(edgeBase + "/fhir/Patient?_count=50")
            #expect(away.status == 503 && away.diagnostics.contains("integrity"), "\(away.status) \(away.text.prefix(300))")
            scrape = try await client.get(edgeBase + "/metrics").text
            #expect(metric(scrape, "edgecache_cache_quarantined_total") == 2)
            #expect(metric(scrape, "edgecache_cache_quarantined_entries") == 1)

            // 3. Origin back: the entry is fetched again and the quarantine is empty.
            proxy.unblock()
            if let bad = failed.first {
                #expect(
                    try await eventually(15) {
                        let read = try await client.get(edgeBase + "/fhir/Patient/p\(bad)")
                        return read.status == 200 && read.text.contains("Family\(bad)")
                    })
            }
            scrape = try await client.get(edgeBase + "/metrics").text
            #expect(metric(scrape, "edgecache_cache_quarantined_entries") == 0)
            // Logged at warning, without the id.
            let log = (try? String(contentsOfFile: edge.logPath, encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n").filter { $0.contains("quarantined") }
            #expect(lines.count >= 2 && lines.allSatisfy { $0.contains("warning") }, "\(log.suffix(1000))")
            #expect(!lines.contains { $0.contains("/p") || $0.contains("Family") }, "\(lines)")
            await client.shutdown()
            await proxy.close()
            await edge.stop()
            await origin.stop()
        }
    }
}
