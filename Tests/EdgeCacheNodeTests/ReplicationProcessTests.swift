import EdgeCacheNode
import Foundation
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// Real `edgecache serve` processes, real ports, real mTLS, real signals.
    @Suite struct ReplicationProcessTests {
        let dir = TempDir()

        struct Pair {
            let origin: NodeProcess
            let edge: NodeProcess
            let proxy: TCPProxy
            var originAPI: String { "https://127.0.0.1:\(origin.ports["api"]!)" }
            var edgeAPI: String { "https://127.0.0.1:\(edge.ports["api"]!)" }
        }

        /// Starts an origin, a proxy in front of its peer listener, and an edge following through it.
        func startPair(originExtra: String = "", edgeExtra: String = "") async throws -> Pair {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = NodeProcess(configPath: try config.writeOrigin(extra: originExtra), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let proxy = try await TCPProxy(targetPort: origin.ports["peer"]!)
            let edge = NodeProcess(
                configPath: try config.writeEdge(tenant: "a", originPort: proxy.port, extra: edgeExtra), dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            return Pair(origin: origin, edge: edge, proxy: proxy)
        }

        func status(_ client: TestClient, _ base: String) async throws -> [String: Any] {
            try await client.get(base + "/status").json
        }

        /// Every Observation at `base` as id → version, paging through searchsets.
        func versions(_ client: TestClient, _ base: String) async throws -> [String: String] {
            var result: [String: String] = [:]
            var next: String? = base + "/fhir/Observation?_count=500"
            while let url = next {
                let page = try await client.get(url).json
                for entry in page["entry"] as? [[String: Any]] ?? [] {
                    let resource = entry["resource"] as? [String: Any] ?? [:]
                    result[resource["id"] as? String ?? ""] = (resource["meta"] as? [String: Any])?["versionId"] as? String
                }
                next = (page["link"] as? [[String: String]])?.first { $0["relation"] == "next" }?["url"]
            }
            return result
        }

        func observation(_ i: Int, _ note: String) -> String {
            #"{"resourceType":"Observation","id":"obs-\#(i)","status":"final","code":{"text":"heart rate"},"subject":{"reference":"Patient/p\#(i % 50)"},"note":[{"text":"\#(note)"}]}"#
        }

        /// Writes ids `range` at the origin, `concurrency` at a time.
        func write(_ client: TestClient, _ base: String, _ range: Range<Int>, note: String) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var iterator = range.makeIterator()
                for _ in 0..<8 {
                    guard let i = iterator.next() else { break }
                    group.addTask {
                        let status = try await client.put("\(base)/fhir/Observation/obs-\(i)", observation(i, note)).status
                        #expect(status < 300)
                    }
                }
                while try await group.next() != nil {
                    if let i = iterator.next() {
                        group.addTask {
                            let status = try await client.put("\(base)/fhir/Observation/obs-\(i)", observation(i, note)).status
                            #expect(status < 300)
                        }
                    }
                }
            }
        }

        @Test func edgeConvergesThroughCutStreamsAndRestartsWithoutApplyingTwice() async throws {
            let pair = try await startPair(
                originExtra: "replication: { heartbeat_ms: 250 }", edgeExtra: "replication: { heartbeat_ms: 250 }")
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")

            // 1,000 creates and 200 updates at the origin; the stream is cut twice mid-way and the
            // edge process is SIGKILLed and restarted once.
            func interruptions() -> Int {
                let log = (try? String(contentsOfFile: pair.edge.logPath, encoding: .utf8)) ?? ""
                return log.components(separatedBy: "change stream interrupted").count - 1
            }
            try await write(client, pair.originAPI, 0..<400, note: "first")
            pair.proxy.cutAll()
            // The edge notices the broken stream (and logs it) before the next step.
            #expect(try await eventually(5) { interruptions() == 1 })
            try await write(client, pair.originAPI, 400..<700, note: "first")
            pair.proxy.cutAll()
            #expect(try await eventually(5) { interruptions() == 2 })
            await pair.edge.stop(SIGKILL)
            try await write(client, pair.originAPI, 700..<1000, note: "first")
            try await pair.edge.start(expectListeners: 1)
            try await write(client, pair.originAPI, 0..<200, note: "second")

            let head = try #require(try await status(client, pair.originAPI)["head_lsn"] as? Int)
            #expect(head == 1200)
            let converged = try await eventually(60, every: 0.25) {
                try await status(client, pair.edgeAPI)["applied_lsn"] as? Int == head
            }
            #expect(converged)
            let edgeStatus = try await status(client, pair.edgeAPI)
            // Exactly one application per change, across cuts and a SIGKILL.
            #expect(edgeStatus["events_applied"] as? Int == 1200, "\(edgeStatus)")
            #expect(edgeStatus["link"] as? String == "live")
            let atOrigin = try await versions(client, pair.originAPI)
            let atEdge = try await versions(client, pair.edgeAPI)
            #expect(atOrigin.count == 1000)
            #expect(atEdge == atOrigin)
            #expect(atOrigin["obs-5"] == "2" && atOrigin["obs-500"] == "1")
            // The per-tenant digests (drills compare these) agree.
            let originDigest = try await client.get(pair.originAPI + "/digest").json
            let edgeDigest = try await client.get(pair.edgeAPI + "/digest").json
            #expect(originDigest["resources"] as? Int == 1000 && originDigest["digest"] as? String == edgeDigest["digest"] as? String)

            // A restart with nothing new applies nothing again.
            await pair.edge.stop(SIGTERM)
            try await pair.edge.start(expectListeners: 1)
            #expect(try await eventually(10) { try await status(client, pair.edgeAPI)["link"] as? String == "live" })
            #expect(try await status(client, pair.edgeAPI)["events_applied"] as? Int == 1200)

            await client.shutdown()
            await pair.proxy.close()
            await pair.edge.stop()
            await pair.origin.stop()
        }

        @Test func edgeBehindTheRetainedLogReBootstrapsFromASnapshot() async throws {
            let pair = try await startPair(originExtra: "replication: { heartbeat_ms: 250, log_retention_changes: 10 }")
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            try await write(client, pair.originAPI, 0..<20, note: "before")
            #expect(try await eventually(10) { try await status(client, pair.edgeAPI)["applied_lsn"] as? Int == 20 })
            await pair.edge.stop(SIGTERM)
            try await write(client, pair.originAPI, 20..<120, note: "while away")
            try await write(client, pair.originAPI, 0..<10, note: "changed while away")
            // Let the origin's compactor drop the log the edge would need.
            try await Task.sleep(for: .seconds(3))
            try await pair.edge.start(expectListeners: 1)
            #expect(try await eventually(20) { try await status(client, pair.edgeAPI)["applied_lsn"] as? Int == 130 })
            let edgeStatus = try await status(client, pair.edgeAPI)
            #expect(edgeStatus["bootstraps"] as? Int == 1, "\(edgeStatus)")
            // Its size and duration stay in /status (the origin announced 120 resources).
            let bootstrap = edgeStatus["bootstrap"] as? [String: Any] ?? [:]
            let last = bootstrap["last"] as? [String: Any] ?? [:]
            #expect(
                bootstrap["running"] as? Bool == false && last["resources"] as? Int == 120 && last["lsn"] as? Int == 130, "\(bootstrap)")
            #expect(try await versions(client, pair.edgeAPI) == versions(client, pair.originAPI))
            await client.shutdown()
            await pair.proxy.close()
            await pair.edge.stop()
            await pair.origin.stop()
        }

        @Test func hungOrKilledOriginNeverHangsARequest() async throws {
            let pair = try await startPair(
                originExtra: "replication: { heartbeat_ms: 200 }", edgeExtra: "replication: { heartbeat_ms: 200 }")
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            try await write(client, pair.originAPI, 0..<5, note: "x")
            #expect(try await eventually(10) { try await status(client, pair.edgeAPI)["applied_lsn"] as? Int == 5 })
            let fresh = try await client.get(pair.edgeAPI + "/fhir/Observation/obs-1")
            #expect(fresh.header("Cache-Status") == "edgecache; hit; ttl=600")

            // SIGSTOP: connections hang instead of being refused.
            pair.origin.signal(SIGSTOP)
            #expect(try await eventually(5) { try await status(client, pair.edgeAPI)["link"] as? String != "live" })
            let stale = try await client.get(pair.edgeAPI + "/fhir/Observation/obs-1")
            #expect(stale.status == 200)
            #expect(stale.header("Cache-Status")?.contains("detail=\"origin-unreachable\"") == true, "\(stale.headers)")
            var started = Date()
            let missing = try await client.get(pair.edgeAPI + "/fhir/Observation/not-here")
            #expect(missing.status == 503)
            #expect(Date().timeIntervalSince(started) < 5)
            started = Date()
            #expect(try await client.put(pair.edgeAPI + "/fhir/Observation/obs-9", observation(9, "y")).status == 202)
            #expect(Date().timeIntervalSince(started) < 5)
            pair.origin.signal(SIGCONT)
            #expect(try await eventually(15) { try await status(client, pair.edgeAPI)["link"] as? String == "live" })
            #expect(try await client.get(pair.edgeAPI + "/fhir/Observation/obs-1").header("Cache-Status") == "edgecache; hit; ttl=600")

            // SIGKILL: refused connections, same answers.
            await pair.origin.stop(SIGKILL)
            #expect(try await eventually(5) { try await status(client, pair.edgeAPI)["link"] as? String != "live" })
            #expect(try await client.get(pair.edgeAPI + "/fhir/Observation/obs-2").status == 200)
            started = Date()
            #expect(try await client.get(pair.edgeAPI + "/fhir/Observation/not-here").status == 503)
            #expect(Date().timeIntervalSince(started) < 5)
            await client.shutdown()
            await pair.proxy.close()
            await pair.edge.stop()
        }
    }
}
