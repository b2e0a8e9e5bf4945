import Foundation
import NIOCore
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// A new edge catching up over a history of large resources (issue 13, item 2): the origin's
    /// memory stays bounded, its API keeps answering and the edges already following stay live.
    @Suite struct CatchUpMemoryProcessTests {
        let dir = TempDir()

        /// 40 versions of ~2 MiB incompressible resources (80 MiB of history) in CI; the issue's
        /// full size (100 versions of 4 MiB) with `EDGECACHE_CATCHUP_VERSIONS=100
        /// EDGECACHE_CATCHUP_MIB=4`; see docs/benchmarks.md.
        static let versions = ProcessInfo.processInfo.environment["EDGECACHE_CATCHUP_VERSIONS"].flatMap { Int($0) } ?? 40
        static let resourceBytes = (ProcessInfo.processInfo.environment["EDGECACHE_CATCHUP_MIB"].flatMap { Int($0) } ?? 2) << 20
        /// How long the fresh edge may take: 75 s, or 4 s per 10 MiB of history when that is more.
        static let catchUpSeconds = max(75.0, Double(versions * resourceBytes) / Double(10 << 20) * 4)
        /// What the origin may add to its resident memory while a new edge catches up.
        static let originPeakBoundMiB = 96.0

        func status(_ client: TestClient, _ base: String) async throws -> [String: Any] {
            try await client.get(base + "/status").json
        }

        func large(_ i: Int) -> String {
            let text = randomText(bytes: Self.resourceBytes * 3 / 4)
            return
                #"{"resourceType":"Observation","id":"big-\#(i % 10)","status":"final","code":{"text":"waveform"},"subject":{"reference":"Patient/p1"},"note":[{"text":"\#(text)"}]}"#
        }

        @Test func newEdgeCatchesUpOverLargeHistoryWithinAMemoryBound() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let replication = "replication: { heartbeat_ms: 500 }"
            let origin = NodeProcess(
                configPath: try config.writeOrigin(extra: "limits: { max_body_bytes: 8388608 }\n" + replication),
                dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let peer = origin.ports["peer"]!
            let originAPI = "https://127.0.0.1:\(origin.ports["api"]!)"
            let live = NodeProcess(
                configPath: try config.writeEdge(name: "edge1", tenant: "a", originPort: peer, extra: replication),
                dataDir: dir.path + "/edge1-data")
            try await live.start(expectListeners: 1)
            let liveAPI = "https://127.0.0.1:\(live.ports["api"]!)"
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")

            // The history: versions of ten large resources, written two at a time.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<2 {
                    group.addTask {
                        for i in stride(from: lane, to: Self.versions, by: 2) {
                            let reply = try await client.send(
                                .PUT, "\(originAPI)/fhir/Observation/big-\(i % 10)", body: large(i), timeout: .seconds(60))
                            #expect(reply.status < 300, "\(reply.status) \(reply.diagnostics)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let head = try #require(try await status(client, originAPI)["head_lsn"] as? Int)
            #expect(head == Self.versions)
            #expect(try await eventually(60, every: 0.25) { try await status(client, liveAPI)["applied_lsn"] as? Int == head })

            // Baseline, then a fresh edge from LSN 0 while an API client and the live edge keep working.
            try await Task.sleep(for: .seconds(1))
            let baseline = origin.memory.rss
            origin.memory.resetPeak()
            let fresh = NodeProcess(
                configPath: try config.writeEdge(name: "edge2", tenant: "a", originPort: peer, extra: replication),
                dataDir: dir.path + "/edge2-data")
            let started = Date()
            try await fresh.start(expectListeners: 1)
            let freshAPI = "https://127.0.0.1:\(fresh.ports["api"]!)"

            var slowest = 0.0
            var failures: [String] = []
            var liveLost = 0
            var small = 0
            var sampledPeak = 0.0
            var caughtUp: Double?
            while Date().timeIntervalSince(started) < Self.catchUpSeconds {
                let t0 = Date()
                do {
                    let put = try await client.send(
                        .PUT, "\(originAPI)/fhir/Observation/small-\(small % 5)",
                        body: #"{"resourceType":"Observation","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/p2"}}"#,
                        timeout: .seconds(10))
                    let get = try await client.send(.GET, "\(originAPI)/fhir/Observation/small-\(small % 5)", timeout: .seconds(10))
                    if put.status >= 300 || get.status != 200 { failures.append("PUT \(put.status) GET \(get.status)") }
                    small += 1
                } catch {
                    failures.append("\(error)")
                }
                slowest = max(slowest, Date().timeIntervalSince(t0))
                if (try? await status(client, liveAPI)["link"] as? String) != "live" { liveLost += 1 }
                sampledPeak = max(sampledPeak, origin.memory.rss)
                if caughtUp == nil, let applied = try? await status(client, freshAPI)["applied_lsn"] as? Int, applied >= head {
                    caughtUp = Date().timeIntervalSince(started)
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let peak = max(origin.memory.peak, sampledPeak)
            let freshLog = (try? String(contentsOfFile: fresh.logPath, encoding: .utf8)) ?? ""
            let figures = """
                origin RSS baseline \(Int(baseline)) MiB, peak \(Int(peak)) MiB (+\(Int(peak - baseline))), \
                caught up in \(caughtUp.map { String(format: "%.1f s", $0) } ?? "never"), slowest API round trip \
                \(String(format: "%.2f s", slowest)), \(small) API writes, live edge not live \(liveLost)x, \
                fresh edge stream interruptions \(freshLog.components(separatedBy: "change stream interrupted").count - 1)
                """
            print("catch-up figures: \(figures)")
            #expect(caughtUp != nil, "\(figures)")
            #expect(peak - baseline < Self.originPeakBoundMiB, "\(figures)")
            #expect(failures.isEmpty, "\(failures.prefix(3)) \(figures)")
            #expect(slowest < 3, "\(figures)")
            #expect(liveLost == 0, "\(figures)")
            // Both edges hold what the origin holds.
            let finalHead = try #require(try await status(client, originAPI)["head_lsn"] as? Int)
            for api in [liveAPI, freshAPI] {
                #expect(try await eventually(20) { try await status(client, api)["applied_lsn"] as? Int == finalHead })
            }
            let digest = try await client.get(originAPI + "/digest").json["digest"] as? String
            #expect(try await client.get(freshAPI + "/digest").json["digest"] as? String == digest)

            await client.shutdown()
            await fresh.stop()
            await live.stop()
            await origin.stop()
        }
    }
}
