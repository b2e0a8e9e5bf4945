import EdgeCacheCore
import EdgeCacheNode
import Foundation
import Testing

/// The policy registry: the file, its errors, and its publication from origin to edge.
@Suite struct PolicyFileTests {
    static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("edge-config/policy.yaml").path

    @Test func shippedFileHoldsTheDesignDefaults() throws {
        let registry = try PolicyFile.load(path: Self.shipped)
        #expect(registry.version == "2026-11-22.1")
        var builtin = DefaultPolicy.registry
        builtin.version = registry.version
        #expect(registry == builtin)
        #expect(PolicyRegistry.decode(registry.json()) == registry)
    }

    @Test func overridesAndDefaults() throws {
        let registry = try PolicyFile.parse(
            """
            version: v7
            classes:
              clinical:
                ttl_seconds: 5
                stale_if_error_seconds: 60
            types:
              Basic: operational
            """, file: "p.yaml")
        #expect(registry.policy(forType: "Observation").ttlSeconds == 5)
        #expect(registry.policy(forType: "Observation").staleIfErrorSeconds == 60)
        #expect(registry.policy(forType: "Observation").replication == .full)
        #expect(registry.dataClass(of: "Basic") == .operational)
        #expect(registry.policy(forType: "MedicationRequest") == DefaultPolicy.policy(for: .clinicalCritical))
    }

    @Test(arguments: [
        ("version: v1\nclasses:\n  clinicl:\n    ttl_seconds: 5\n", "p.yaml:3: unknown class 'clinicl'"),
        ("version: v1\nclasses:\n  clinical:\n    ttl_second: 5\n", "p.yaml:4: unknown key 'classes.clinical.ttl_second'"),
        ("version: v1\nclasses:\n  clinical:\n    ttl_seconds: -1\n", "p.yaml:4: 'classes.clinical.ttl_seconds' must be between"),
        ("version: v1\nclasses:\n  clinical:\n    consistency: strict\n", "p.yaml:4: 'classes.clinical.consistency' must be one of"),
        (
            "version: v1\nclasses:\n  clinical-critical:\n    ttl_seconds: 5\n    conflict: last-writer-wins\n",
            "p.yaml:5: 'classes.clinical-critical.conflict' cannot be last-writer-wins"
        ),
        ("version: v1\nclasses:\n  consent:\n    replication: resident\n", "p.yaml:4: 'classes.consent.replication' must be full"),
        ("version: v1\ntypes:\n  Observaton: clinical\n", "p.yaml:3: 'types.Observaton' is not a FHIR R4 resource type"),
        ("version: v1\ntypes:\n  Observation: consent\n", "p.yaml:3: only Consent belongs to the consent class"),
        ("classes: {}\n", "p.yaml:1: 'version' is required"),
    ])
    func badFilesNameTheLine(text: String, expected: String) {
        do {
            _ = try PolicyFile.parse(text, file: "p.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }
}

extension IntegrationSuites {
    /// Each class's staleness rule at an edge, with time moved by hand: within the TTL a hit;
    /// beyond, a revalidation (304); origin unreachable beyond the stale-if-error limit, a 503
    /// that names the class and the age.
    @Suite struct StalenessRuleTests {
        let dir = TempDir()

        @Test func hitRevalidateAndRefusePerClass() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            // Heartbeats every 10 s: between two of them the edge's link follows the hand-moved clock.
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 10000 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            for (path, body) in [
                (
                    "MedicationRequest/mr1",
                    #"{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"}}"#
                ),
                ("RiskAssessment/ra1", #"{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/p1"}}"#),
                ("Observation/o1", #"{"resourceType":"Observation","status":"final","code":{"text":"hr"}}"#),
            ] {
                #expect(try await client.put("\(originAPI)/\(path)", body).status == 201)
            }
            let clock = ManualClock()
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(
                    tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_timeout_ms: 15000 }"),
                clock: clock)
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            let link = edge.runtime.edgeLink!
            #expect(try await eventually(10) { link.isLive && link.snapshot.applied >= 3 })

            // Within the TTL: hits (the resident RiskAssessment is fetched once first).
            #expect(try await client.get("\(edgeAPI)/RiskAssessment/ra1").header("Cache-Status") == "edgecache; fwd=miss; stored")
            #expect(try await client.get("\(edgeAPI)/MedicationRequest/mr1").header("Cache-Status") == "edgecache; hit; ttl=300")
            #expect(try await client.get("\(edgeAPI)/RiskAssessment/ra1").header("Cache-Status") == "edgecache; hit; ttl=300")

            /// Moves the clock and reads; done again if a heartbeat lands in between (it would
            /// make the link live, and the entry fresh, again).
            func afterAdvance(_ seconds: Int, _ paths: [String]) async throws -> [TestClient.Reply] {
                for _ in 0..<5 {
                    let beat = link.snapshot.lastHeartbeatAt
                    clock.advance(seconds: seconds)
                    var replies: [TestClient.Reply] = []
                    for path in paths { replies.append(try await client.get("\(edgeAPI)/\(path)")) }
                    if link.snapshot.lastHeartbeatAt == beat { return replies }
                }
                throw TestFailure("heartbeats kept landing during the reads")
            }

            // 301 s later the stream is silent: past the 300 s TTL of clinical-critical and
            // predictive, so the edge revalidates (304); clinical (600 s) is still a hit.
            let replies = try await afterAdvance(301, ["MedicationRequest/mr1", "RiskAssessment/ra1", "Observation/o1"])
            #expect(replies[0].status == 200 && replies[0].header("Cache-Status") == "edgecache; fwd=stale; fwd-status=304; ttl=300")
            #expect(replies[1].header("Cache-Status") == "edgecache; fwd=stale; fwd-status=304; ttl=300")
            #expect(replies[2].header("Cache-Status")?.hasPrefix("edgecache; hit; ttl=299") == true, "\(replies[2].headers)")
            #expect(replies[2].header("Age") == "301")
            // The revalidated entry is fresh again.
            #expect(
                try await client.get("\(edgeAPI)/MedicationRequest/mr1").header("Cache-Status")?.hasPrefix("edgecache; hit; ttl=300")
                    == true)

            // The origin goes away.
            await origin.stop()
            #expect(try await eventually(5) { !link.snapshot.connected })
            clock.advance(seconds: 301)
            // clinical-critical: past the TTL, within its 12 h stale-if-error limit: served stale.
            let stale = try await client.get("\(edgeAPI)/MedicationRequest/mr1")
            #expect(stale.status == 200)
            #expect(stale.header("Cache-Status")?.contains("detail=\"origin-unreachable\"") == true, "\(stale.headers)")
            #expect(Int(stale.header("Age") ?? "") ?? 0 >= 301)
            // predictive: revalidated 301 s ago, beyond its 300 s limit: refused, naming class and age.
            let refused = try await client.get("\(edgeAPI)/RiskAssessment/ra1")
            #expect(refused.status == 503 && refused.json["resourceType"] as? String == "OperationOutcome")
            let why = refused.diagnostics
            #expect(why.contains("class predictive") && why.contains("301 s old") && why.contains("limit of 300 s"), "\(why)")
            // clinical: 602 s old, past its 600 s TTL, no stale-if-error limit: served stale.
            let clinical = try await client.get("\(edgeAPI)/Observation/o1")
            #expect(clinical.status == 200 && clinical.header("Cache-Status")?.contains("ttl=-") == true, "\(clinical.headers)")
            // Twelve hours on, clinical-critical is refused too.
            clock.advance(seconds: 12 * 3600)
            let late = try await client.get("\(edgeAPI)/MedicationRequest/mr1")
            #expect(
                late.status == 503 && late.diagnostics.contains("class clinical-critical") && late.diagnostics.contains("limit of 43200 s"))
            await client.shutdown()
            await edge.stop()
        }

        /// The same rules, table-driven over all seven classes of the default policy.
        @Test func everyClassFollowsItsRule() async throws {
            struct Case {
                let path: String
                let body: String
                let dataClass: String
                let ttl: Int
                let limit: Int?
                let resident: Bool
                var confirmedAt = 0
            }
            var cases = [
                Case(
                    path: "Consent/cs1",
                    body:
                        #"{"resourceType":"Consent","status":"active","scope":{"text":"x"},"category":[{"text":"x"}],"patient":{"reference":"Patient/p1"}}"#,
                    dataClass: "consent", ttl: 60, limit: nil, resident: false),
                Case(
                    path: "MedicationRequest/mr1",
                    body: #"{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"}}"#,
                    dataClass: "clinical-critical", ttl: 300, limit: 43200, resident: false),
                Case(
                    path: "Observation/o1", body: #"{"resourceType":"Observation","status":"final","code":{"text":"hr"}}"#,
                    dataClass: "clinical", ttl: 600, limit: nil, resident: false),
                Case(
                    path: "Patient/p1", body: #"{"resourceType":"Patient","active":true}"#, dataClass: "operational", ttl: 900, limit: nil,
                    resident: false),
                Case(
                    path: "Basic/bs1", body: #"{"resourceType":"Basic","code":{"text":"hcp"}}"#, dataClass: "commercial", ttl: 3600,
                    limit: nil, resident: true),
                Case(
                    path: "RiskAssessment/ra1",
                    body: #"{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/p1"}}"#,
                    dataClass: "predictive", ttl: 300, limit: 300, resident: true),
                Case(
                    path: "Medication/m1", body: #"{"resourceType":"Medication","code":{"text":"aspirin"}}"#, dataClass: "reference",
                    ttl: 86400, limit: nil, resident: false),
            ]
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 10000 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            for c in cases { #expect(try await client.put("\(originAPI)/\(c.path)", c.body).status == 201) }
            let clock = ManualClock()
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(
                    tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_timeout_ms: 15000 }"),
                clock: clock)
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            let link = edge.runtime.edgeLink!
            #expect(try await eventually(10) { link.isLive && link.snapshot.applied >= 7 })
            for c in cases where c.resident {
                #expect(try await client.get("\(edgeAPI)/\(c.path)").header("Cache-Status") == "edgecache; fwd=miss; stored")
            }
            var now = 0
            // Checks every class at `now` seconds; `reachable`: whether the origin can answer.
            func check(reachable: Bool) async throws {
                for index in cases.indices {
                    let c = cases[index]
                    let reply = try await client.get("\(edgeAPI)/\(c.path)")
                    let status = reply.header("Cache-Status") ?? ""
                    let age = now - c.confirmedAt
                    if age <= c.ttl {
                        #expect(
                            reply.status == 200 && status.hasPrefix("edgecache; hit; ttl=\(c.ttl - age)"),
                            "\(c.dataClass) at \(now) s: \(status)")
                    } else if reachable {
                        #expect(status == "edgecache; fwd=stale; fwd-status=304; ttl=\(c.ttl)", "\(c.dataClass) at \(now) s: \(status)")
                        cases[index].confirmedAt = now
                    } else if let limit = c.limit, age > limit {
                        #expect(reply.status == 503, "\(c.dataClass) at \(now) s: \(reply.status)")
                        #expect(
                            reply.diagnostics.contains("class \(c.dataClass)) is \(age) s old")
                                && reply.diagnostics.contains("limit of \(limit) s"), "\(reply.diagnostics)")
                    } else {
                        #expect(
                            reply.status == 200 && status == "edgecache; hit; ttl=\(c.ttl - age); detail=\"origin-unreachable\"",
                            "\(c.dataClass) at \(now) s: \(status)")
                        #expect(reply.header("Age") == String(age))
                    }
                }
            }
            try await check(reachable: true)
            // Past the shorter TTLs with the stream silent: those classes are revalidated.
            for attempt in 0..<5 {
                let beat = link.snapshot.lastHeartbeatAt
                let saved = cases
                clock.advance(seconds: 301)
                now += 301
                try await check(reachable: true)
                if link.snapshot.lastHeartbeatAt == beat { break }
                // A heartbeat landed during the reads: the link was live again; try once more.
                cases = saved
                #expect(attempt < 4)
            }
            await origin.stop()
            #expect(try await eventually(5) { !link.snapshot.connected })
            for step in [301, 3000, 43200] {
                clock.advance(seconds: step)
                now += step
                try await check(reachable: false)
            }
            await client.shutdown()
            await edge.stop()
        }

        @Test func edgeTakesThePolicyTheOriginPublishesAndKeepsIt() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let policyPath = dir.path + "/policy.yaml"
            try "version: site-7\nclasses:\n  clinical:\n    ttl_seconds: 42\n".write(toFile: policyPath, atomically: true, encoding: .utf8)
            let origin = try await InProcessNode(
                configPath: try pair.writeOrigin(extra: "policy: \(policyPath)\nreplication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            #expect(
                try await client.put(
                    "https://127.0.0.1:\(origin.port("api"))/fhir/Observation/o1",
                    #"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#
                ).status == 201)
            let edgeConfig = try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }")
            var edge = try await InProcessNode(configPath: edgeConfig)
            var edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(10) { edge.runtime.policies.version == "site-7" })
            let status = try await client.get(edgeAPI.replacingOccurrences(of: "/fhir", with: "/status")).json
            #expect(status["policy_source"] as? String == "origin" && status["policy_version"] as? String == "site-7")
            #expect(
                try await eventually(5) {
                    try await client.get("\(edgeAPI)/Observation/o1").header("Cache-Status") == "edgecache; hit; ttl=42"
                })
            // Restarted while the origin is away, the edge keeps the registry it stored.
            await edge.stop()
            await origin.stop()
            edge = try await InProcessNode(configPath: edgeConfig)
            edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(edge.runtime.policies.version == "site-7" && edge.runtime.policies.source == .stored)
            await client.shutdown()
            await edge.stop()
        }
    }
}
