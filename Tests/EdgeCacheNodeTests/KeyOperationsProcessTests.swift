import EdgeCacheTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Runs the CLI off the cooperative pool (it blocks until the process exits).
func runCLIAsync(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try runCLI(arguments) })
        }
    }
}

/// Runs a SQL query on a SQLite file with the system's python3 (blobs as Python prints them).
func sqlite(_ path: String, _ sql: String) throws -> String { try sqliteQuery(path, sql, blobsAsHex: false) }

extension IntegrationSuites {
    /// `edgecache keys rotate | rotate-kek | shred` against a running `edgecache serve` process.
    @Suite struct KeyOperationsProcessTests {
        let dir = TempDir()

        func patient(_ i: Int) -> String { #"{"resourceType":"Patient","id":"p\#(i)","name":[{"family":"Family\#(i)"}]}"# }

        @Test func rotatingWhileServingFailsNoRead() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let originConfig = try config.writeOrigin()
            let origin = NodeProcess(configPath: originConfig, dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let api = "https://127.0.0.1:\(origin.ports["api"]!)/fhir"
            let count = 300
            for i in 0..<count { #expect(try await client.put(api + "/Patient/p\(i)", patient(i)).status == 201) }

            let stop = NIOLockedValueBox(false)
            let tally = NIOLockedValueBox((reads: 0, failures: [String]()))
            let readers = (0..<3).map { _ in
                Task {
                    while !stop.withLockedValue({ $0 }) {
                        let i = Int.random(in: 0..<count)
                        let status = (try? await client.get(api + "/Patient/p\(i)").status) ?? -1
                        tally.withLockedValue {
                            $0.reads += 1
                            if status != 200 { $0.failures.append("p\(i): \(status)") }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let rotated = try await runCLIAsync(["keys", "rotate", "--config", originConfig, "--batch-size", "64"])
            try await Task.sleep(for: .milliseconds(300))
            stop.withLockedValue { $0 = true }
            for reader in readers { await reader.value }

            #expect(rotated.status == 0, "\(rotated.output)")
            #expect(rotated.output.contains("tenant a: data key v2 is now current"), "\(rotated.output)")
            #expect(rotated.output.contains("tenant a: re-sealed \(count) entries to v2"), "\(rotated.output)")
            // Not a terminal: plain progress lines, the last one complete.
            #expect(
                rotated.output.contains("tenant a: re-sealing: [##############################] 300/300 re-sealed"), "\(rotated.output)")
            #expect(rotated.output.contains("tenant a: retired data key version(s) v1"), "\(rotated.output)")
            #expect(rotated.output.contains("audit trail: data key v2 is now current"), "\(rotated.output)")
            #expect(rotated.output.contains("audit trail: retired data key version(s) v1"), "\(rotated.output)")
            let (reads, failures) = tally.withLockedValue { ($0.reads, $0.failures) }
            #expect(failures.isEmpty, "\(failures.prefix(10))")
            #expect(reads > 20)
            print("reads during rotation: \(reads), failed: \(failures.count)")

            // The running node seals its next write under v2 (it noticed the rotation).
            #expect(try await client.put(api + "/Patient/p9999", patient(9999)).status == 201)
            let db = dir.path + "/origin-data/origin.sqlite"
            #expect(try sqlite(db, "SELECT DISTINCT hex(substr(blob, 1, 5)) FROM history WHERE tenant = 'a'") == "0100000002")
            #expect(try sqlite(db, "SELECT COUNT(*) FROM history WHERE tenant = 'a'") == "\(count + 1)")
            // The audit trail (re-sealed, and appended to by both processes) still verifies and holds the operation.
            await origin.stop()
            let verify = try runCLI(["audit", "verify", "--config", originConfig])
            #expect(verify.status == 0 && verify.output.contains("audit trail OK"), "\(verify.output)")
            let export = try runCLI(["audit", "export", "--config", originConfig])
            #expect(export.output.contains("key-rotate"), "\(export.output.suffix(500))")
            await client.shutdown()
        }

        @Test func rotatingARunningEdgeFailsNoReadAndRefusesOtherTenants() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = NodeProcess(
                configPath: try config.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let edgeConfig = try config.writeEdge(
                tenant: "a", originPort: origin.ports["peer"]!, extra: "replication: { heartbeat_ms: 200 }")
            let edge = NodeProcess(configPath: edgeConfig, dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.ports["api"]!)/fhir"
            let edgeAPI = "https://127.0.0.1:\(edge.ports["api"]!)/fhir"
            let count = 100
            for i in 0..<count { #expect(try await client.put(originAPI + "/Patient/p\(i)", patient(i)).status == 201) }
            #expect(try await eventually(15) { try await client.get(edgeAPI + "/Patient/p\(count - 1)").status == 200 })

            let stop = NIOLockedValueBox(false)
            let tally = NIOLockedValueBox((reads: 0, failures: [String]()))
            let readers = (0..<3).map { _ in
                Task {
                    while !stop.withLockedValue({ $0 }) {
                        let i = Int.random(in: 0..<count)
                        let status = (try? await client.get(edgeAPI + "/Patient/p\(i)").status) ?? -1
                        tally.withLockedValue {
                            $0.reads += 1
                            if status != 200 { $0.failures.append("p\(i): \(status)") }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let rotated = try await runCLIAsync(["keys", "rotate", "--config", edgeConfig, "--batch-size", "16"])
            // Changes keep arriving on the stream while and after the rotation.
            for i in 0..<10 { #expect(try await client.put(originAPI + "/Patient/p\(i)", patient(i)).status == 200) }
            #expect(try await eventually(15) { try await client.get(edgeAPI + "/Patient/p9").header("ETag") == "W/\"2\"" })
            stop.withLockedValue { $0 = true }
            for reader in readers { await reader.value }

            #expect(rotated.status == 0, "\(rotated.output)")
            #expect(rotated.output.contains("tenant a: re-sealed \(count) entries to v2"), "\(rotated.output)")
            let (reads, failures) = tally.withLockedValue { ($0.reads, $0.failures) }
            #expect(failures.isEmpty, "\(failures.prefix(10))")
            #expect(reads > 20)
            print("edge reads during rotation: \(reads), failed: \(failures.count)")
            let db = dir.path + "/edge-data/edge.sqlite"
            #expect(try sqlite(db, "SELECT DISTINCT hex(substr(blob, 1, 5)) FROM entries") == "0100000002")
            #expect(try sqlite(db, "SELECT version FROM data_keys ORDER BY version") == "0\n2")

            let other = try runCLI(["keys", "rotate", "--config", edgeConfig, "--tenant", "b"])
            #expect(other.status != 0 && other.output.contains("this edge holds tenant a, not b"), "\(other.output)")
            let shredOther = try runCLI(["keys", "shred", "--config", edgeConfig, "--tenant", "b", "--yes"])
            #expect(shredOther.status != 0 && shredOther.output.contains("this edge holds tenant a, not b"), "\(shredOther.output)")
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        @Test func shredStopsServingATenantAndRotateKEKRetiresTheOldKEK() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let originConfig = try config.writeOrigin()
            let origin = NodeProcess(configPath: originConfig, dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let clientA = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let clientB = try TestClient(pki: SharedPKI.main, identity: "client-b")
            var api = "https://127.0.0.1:\(origin.ports["api"]!)/fhir"
            for i in 0..<10 {
                #expect(try await clientA.put(api + "/Patient/p\(i)", patient(i)).status == 201)
                #expect(try await clientB.put(api + "/Patient/p\(i)", patient(i)).status == 201)
            }

            // Shred b while the node runs.
            let refused = try runCLI(["keys", "shred", "--config", originConfig, "--tenant", "nobody", "--yes"])
            #expect(refused.status != 0 && refused.output.contains("no data keys of tenant nobody"), "\(refused.output)")
            let shred = try runCLI(["keys", "shred", "--config", originConfig, "--tenant", "b", "--yes"])
            #expect(shred.status == 0 && shred.output.contains("tenant b: 1 data key row(s) destroyed"), "\(shred.output)")
            let readB = try await clientB.get(api + "/Patient/p1")
            #expect(readB.status == 404 || readB.status == 410)
            #expect(readB.text.contains("OperationOutcome"))
            let writeB = try await clientB.put(api + "/Patient/p1", patient(1))
            #expect(writeB.status == 410 && writeB.text.contains("OperationOutcome"), "\(writeB.status) \(writeB.text)")
            #expect(try await clientA.get(api + "/Patient/p1").status == 200)
            let db = dir.path + "/origin-data/origin.sqlite"
            #expect(try sqlite(db, "SELECT COUNT(*) FROM data_keys WHERE tenant = 'b'") == "0")
            #expect(try sqlite(db, "SELECT COUNT(*) FROM history WHERE tenant = 'b'") == "0")

            // Rotate the KEK (node stopped), then only the new KEK opens the data.
            await origin.stop()
            let newKEK = dir.path + "/origin-new.kek"
            #expect(try runCLI(["keys", "init", "--kek-file", newKEK]).status == 0)
            let rewrap = try runCLI(["keys", "rotate-kek", "--config", originConfig, "--new-kek-file", newKEK])
            #expect(rewrap.status == 0 && rewrap.output.contains("re-wrapped"), "\(rewrap.output)")
            let withOld = try runCLI(["serve", "--config", originConfig])
            #expect(withOld.status != 0 && withOld.output.contains("cannot unwrap"), "\(withOld.output)")
            let yaml = try String(contentsOfFile: originConfig, encoding: .utf8).replacingOccurrences(
                of: "kek_file: origin.kek", with: "kek_file: origin-new.kek")
            try yaml.write(toFile: originConfig, atomically: true, encoding: .utf8)
            try await origin.start(expectListeners: 2)
            api = "https://127.0.0.1:\(origin.ports["api"]!)/fhir"
            let readA = try await clientA.get(api + "/Patient/p3")
            #expect(readA.status == 200 && readA.text.contains("Family3"))
            await origin.stop()
            let verify = try runCLI(["audit", "verify", "--config", originConfig])
            #expect(verify.status == 0, "\(verify.output)")
            let export = try runCLI(["audit", "export", "--config", originConfig])
            #expect(export.output.contains("key-shred") && export.output.contains("key-rotate-kek"), "\(export.output.suffix(500))")
            await clientA.shutdown()
            await clientB.shutdown()
        }
    }
}
