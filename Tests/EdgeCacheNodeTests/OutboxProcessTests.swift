import EdgeCacheNode
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// Disconnected operation with real processes: queued writes, conflicts, SIGKILLs.
    @Suite struct OutboxProcessTests {
        let dir = TempDir()

        func status(_ client: TestClient, _ base: String) async throws -> [String: Any] {
            try await client.get(base + "/status").json
        }

        @Test func offlineUpdateOfAChangedMedicationRequestGoesToReview() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = NodeProcess(
                configPath: try config.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let proxy = try await TCPProxy(targetPort: origin.ports["peer"]!)
            let edgeConfig = try config.writeEdge(tenant: "a", originPort: proxy.port, extra: "replication: { heartbeat_ms: 200 }")
            let edge = NodeProcess(configPath: edgeConfig, dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.ports["api"]!)"
            let edgeAPI = "https://127.0.0.1:\(edge.ports["api"]!)"
            func medication(_ note: String) -> String {
                #"{"resourceType":"MedicationRequest","id":"mr-1","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationCodeableConcept":{"text":"amoxicillin"},"note":[{"text":"\#(note)"}]}"#
            }
            #expect(try await client.put(originAPI + "/fhir/MedicationRequest/mr-1", medication("v1 at origin")).status == 201)
            #expect(try await eventually(10) { try await client.get(edgeAPI + "/fhir/MedicationRequest/mr-1").header("ETag") == "W/\"1\"" })

            // The WAN goes down. The edge takes an update based on version 1...
            proxy.block()
            #expect(try await eventually(5) { try await status(client, edgeAPI)["link"] as? String == "origin-unreachable" })
            let queued = try await client.put(edgeAPI + "/fhir/MedicationRequest/mr-1", medication("edge change while offline"))
            #expect(queued.status == 202)
            #expect(queued.header("EdgeCache-Write-Status")?.hasPrefix("queued") == true)
            #expect(queued.text.contains("\"code\":\"queued\""))
            let pending = try await client.get(edgeAPI + "/fhir/MedicationRequest/mr-1")
            #expect(pending.header("Cache-Status")?.contains("pending-write") == true && pending.text.contains("edge change while offline"))
            // ...while the origin changes it too.
            #expect(try await client.put(originAPI + "/fhir/MedicationRequest/mr-1", medication("v2 at origin")).status == 200)

            // The link returns: the edge's write must not overwrite newer clinical truth.
            proxy.unblock()
            #expect(try await eventually(15) { try await status(client, edgeAPI)["outbox_review"] as? Int == 1 })
            let atOrigin = try await client.get(originAPI + "/fhir/MedicationRequest/mr-1")
            #expect(atOrigin.header("ETag") == "W/\"2\"" && atOrigin.text.contains("v2 at origin"))

            let list = try runCLI(["conflicts", "list", "--config", edgeConfig])
            #expect(list.status == 0 && list.output.contains("1 conflict(s)") && list.output.contains("origin_version=2"), "\(list.output)")
            let seq = try #require(list.output.split(separator: "\n").dropFirst().first?.split(separator: "\t").first.map(String.init))
            let show = try runCLI(["conflicts", "show", seq, "--config", edgeConfig])
            #expect(show.output.contains("edge change while offline") && show.output.contains("v2 at origin"), "\(show.output)")
            #expect(try await client.get(originAPI + "/fhir/MedicationRequest/mr-1").header("ETag") == "W/\"2\"")

            // A person keeps the edge's version: it is replayed over version 2.
            let resolved = try runCLI(["conflicts", "resolve", seq, "--keep", "edge", "--config", edgeConfig])
            #expect(resolved.status == 0, "\(resolved.output)")
            #expect(
                try await eventually(10) { try await client.get(originAPI + "/fhir/MedicationRequest/mr-1").header("ETag") == "W/\"3\"" })
            #expect(try await client.get(originAPI + "/fhir/MedicationRequest/mr-1").text.contains("edge change while offline"))
            let outbox = try runCLI(["outbox", "list", "--config", edgeConfig])
            #expect(outbox.output.hasPrefix("queued=0 review=0"), "\(outbox.output)")

            await client.shutdown()
            await proxy.close()
            await edge.stop()
            await origin.stop()
        }

        /// Jepsen-style total-queue accounting across an origin outage and edge SIGKILLs.
        @Test func everyAcknowledgedWriteReachesTheOriginExactlyOnce() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let (originAPIPort, originPeerPort, edgePort) = (freePort(), freePort(), freePort())
            let origin = NodeProcess(
                configPath: try config.writeOrigin(
                    apiPort: originAPIPort, peerPort: originPeerPort, extra: "replication: { heartbeat_ms: 250 }"),
                dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let edgeConfig = try config.writeEdge(
                tenant: "a", originPort: originPeerPort, apiPort: edgePort,
                extra: "replication: { heartbeat_ms: 250 }\noutbox: { batch_size: 25 }")
            let edge = NodeProcess(configPath: edgeConfig, dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let edgeAPI = "https://127.0.0.1:\(edgePort)/fhir"
            let originAPI = "https://127.0.0.1:\(originAPIPort)/fhir"
            #expect(try await eventually(10) { try await status(client, "https://127.0.0.1:\(edgePort)")["link"] as? String == "live" })

            // The origin is killed; everything now queues at the edge.
            await origin.stop(SIGKILL)

            struct Ledger: Sendable {
                var acknowledged: [String: String] = [:]  // key -> resource id
                var attempts = 0
            }
            let ledger = NIOLockedValueBox(Ledger())
            let kills = NIOLockedValueBox(0)
            var seed = UInt64(Date().timeIntervalSince1970)
            print("outbox accounting seed \(seed)")
            func random(_ range: ClosedRange<Int>) -> Int {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return range.lowerBound + Int((seed >> 33) % UInt64(range.count))
            }

            /// Sends until the edge answers 2xx, reusing the key across failures (edge killed, etc.).
            @Sendable func send(_ method: HTTPMethod, _ path: String, key: String, body: String) async -> TestClient.Reply? {
                for _ in 0..<400 {
                    ledger.withLockedValue { $0.attempts += 1 }
                    if let reply = try? await client.send(
                        method, edgeAPI + path, headers: [("Idempotency-Key", key)], body: body, timeout: .seconds(5)),
                        (200..<300).contains(reply.status)
                    {
                        return reply
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return nil
            }

            let enqueueKills = (0..<3).map { _ in random(400...1200) }
            let drainKills = (0..<2).map { _ in random(150...600) }
            let killer = Task {
                for delay in enqueueKills {
                    try await Task.sleep(for: .milliseconds(delay))
                    await edge.stop(SIGKILL)
                    kills.withLockedValue { $0 += 1 }
                    try await edge.start(expectListeners: 1)
                }
            }
            // Four clients, 500 writes each: creates, then updates of what they created.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<4 {
                    group.addTask {
                        var ids: [String] = []
                        for n in 0..<500 {
                            let key = "c\(c)-w\(n)"
                            if n % 3 == 0 || ids.isEmpty {
                                let body =
                                    #"{"resourceType":"Observation","status":"final","code":{"text":"c\#(c)"},"note":[{"text":"\#(key)"}]}"#
                                guard let reply = await send(.POST, "/Observation", key: key, body: body),
                                    let id = reply.json["id"] as? String
                                else {
                                    Issue.record("write \(key) never acknowledged")
                                    continue
                                }
                                ids.append(id)
                                ledger.withLockedValue { $0.acknowledged[key] = id }
                            } else {
                                let id = ids[n % ids.count]
                                let body =
                                    #"{"resourceType":"Observation","id":"\#(id)","status":"amended","code":{"text":"c\#(c)"},"note":[{"text":"\#(key)"}]}"#
                                guard await send(.PUT, "/Observation/\(id)", key: key, body: body) != nil else {
                                    Issue.record("write \(key) never acknowledged")
                                    continue
                                }
                                ledger.withLockedValue { $0.acknowledged[key] = id }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await killer.value
            let edgeStatus = "https://127.0.0.1:\(edgePort)"
            let queuedBefore = try await status(client, edgeStatus)["outbox_queued"] as? Int ?? 0
            print(
                "outbox accounting: \(ledger.withLockedValue { $0.acknowledged.count }) acknowledged, \(queuedBefore) queued, \(kills.withLockedValue { $0 }) edge kills during enqueue"
            )

            // The origin returns; the edge is killed twice more while it drains.
            try await origin.start(expectListeners: 2)
            for delay in drainKills {
                try await Task.sleep(for: .milliseconds(delay))
                await edge.stop(SIGKILL)
                kills.withLockedValue { $0 += 1 }
                try await edge.start(expectListeners: 1)
            }
            let drained = try await eventually(120, every: 0.5) {
                let s = try await status(client, edgeStatus)
                return s["outbox_queued"] as? Int == 0 && s["link"] as? String == "live"
            }
            #expect(drained)
            let final = try await status(client, edgeStatus)
            #expect(final["outbox_review"] as? Int == 0, "\(final)")

            // Total-queue accounting over the origin's full histories.
            let acknowledged = ledger.withLockedValue { $0.acknowledged }
            let ids = Set(acknowledged.values)
            var seen: [String: Int] = [:]
            var originVersions: [String: String] = [:]
            for id in ids {
                let history = try await client.get("\(originAPI)/Observation/\(id)/_history").json
                for entry in history["entry"] as? [[String: Any]] ?? [] {
                    let resource = entry["resource"] as? [String: Any] ?? [:]
                    let marker = ((resource["note"] as? [[String: Any]])?.first?["text"] as? String) ?? "?"
                    seen[marker, default: 0] += 1
                }
                originVersions[id] = try await client.get("\(originAPI)/Observation/\(id)").header("ETag")
            }
            let lost = acknowledged.keys.filter { seen[$0] == nil }.count
            let duplicated = seen.values.filter { $0 > 1 }.count
            let unexpected = seen.keys.filter { acknowledged[$0] == nil }.count
            let attempts = ledger.withLockedValue { $0.attempts }
            print(
                "outbox accounting: acknowledged=\(acknowledged.count) lost=\(lost) duplicated=\(duplicated) unexpected=\(unexpected) attempts=\(attempts) edge_kills=\(kills.withLockedValue { $0 })"
            )
            #expect(acknowledged.count == 2000)
            #expect(lost == 0 && duplicated == 0 && unexpected == 0)
            #expect(
                try await eventually(20) {
                    for id in ids where try await client.get("\(edgeAPI)/Observation/\(id)").header("ETag") != originVersions[id] {
                        return false
                    }
                    return true
                })
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }
    }
}
