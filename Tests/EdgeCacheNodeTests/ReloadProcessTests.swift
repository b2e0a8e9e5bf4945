import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheNode
import Foundation
import Testing

/// Certificates and keys replaced on a running pair with SIGHUP: real `edgecache serve`
/// processes, real signals, connections kept open across the reload.
extension IntegrationSuites {
    @Suite struct ReloadProcessTests {
        let dir = TempDir()

        func status(_ client: TestClient, _ base: String) async throws -> [String: Any] {
            let reply = try await client.get("\(base)/status")
            guard reply.status == 200 else { throw TestFailure("/status answered \(reply.status): \(reply.text)") }
            return reply.json
        }

        func tls(_ json: [String: Any]) -> [String: Any] { json["tls"] as? [String: Any] ?? [:] }

        func serial(_ file: String) -> String? { NodeMetrics.serialNumber(ofFile: file) }

        /// Re-issues every leaf certificate and key from the same CA, over the old files.
        func reissue(_ pki: TestPKI, days: Int) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [repositoryRoot + "/tools/gen-certs.sh", pki.dir, "a", "b"]
            process.environment = ProcessInfo.processInfo.environment.merging(["EDGECACHE_CERT_DAYS": "\(days)"]) { $1 }
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw TestFailure("gen-certs.sh failed") }
        }

        func log(_ node: NodeProcess) -> String {
            String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: node.logPath))) ?? Data(), as: UTF8.self)
        }

        @Test func sighupReplacesCertificatesWithoutDroppingAConnection() async throws {
            let pki = try TestPKI(dir: dir.path + "/pki", tenants: ["a", "b"])
            let pair = PairConfig(dir: dir.path, pki: pki)
            let origin = NodeProcess(configPath: try pair.writeOrigin(), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let edge = NodeProcess(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.ports["peer"]!), dataDir: dir.path + "/edge-data")
            try await edge.start(expectListeners: 1)
            defer {
                Task {
                    await edge.stop(); await origin.stop()
                }
            }
            let edgeBase = "https://127.0.0.1:\(edge.ports["api"]!)"
            let originBase = "https://127.0.0.1:\(origin.ports["api"]!)"
            let client = try TestClient(pki: pki, identity: "client-a")
            let edgeOperator = try TestClient(pki: pki, identity: "edge-a")
            let originOperator = try TestClient(pki: pki, identity: "origin")
            defer {
                Task {
                    await client.shutdown(); await edgeOperator.shutdown(); await originOperator.shutdown()
                }
            }

            #expect(try await client.put("\(originBase)/fhir/Patient/r1", #"{"resourceType":"Patient"}"#).status == 201)
            #expect(try await eventually(10) { try await client.get("\(edgeBase)/fhir/Patient/r1").status == 200 })
            let oldEdgeSerial = serial(pki.cert("edge-a"))
            let oldOriginSerial = serial(pki.cert("origin"))

            // Connections opened before the reload, one to each node's API listener.
            let edgeConnection = try await RawTLSConnection.open(port: edge.ports["api"]!, pki: pki, identity: "client-a")
            let originConnection = try await RawTLSConnection.open(port: origin.ports["api"]!, pki: pki, identity: "client-a")
            #expect(try await edgeConnection.get("/fhir/Patient/r1").status == 200)
            #expect(try await originConnection.get("/fhir/Patient/r1").status == 200)
            #expect(try await edgeConnection.serverCertificateSerial() == oldEdgeSerial)

            try reissue(pki, days: 400)
            let newEdgeSerial = serial(pki.cert("edge-a"))
            let newOriginSerial = serial(pki.cert("origin"))
            #expect(newEdgeSerial != oldEdgeSerial && newOriginSerial != oldOriginSerial)
            origin.signal(SIGHUP)
            edge.signal(SIGHUP)
            #expect(try await eventually(10) { (tls(try await status(originOperator, originBase))["reloads"] as? Int) == 1 })
            #expect(try await eventually(10) { (tls(try await status(edgeOperator, edgeBase))["reloads"] as? Int) == 1 })
            let edgeTLS = tls(try await status(edgeOperator, edgeBase))
            #expect(edgeTLS["certificate_serial"] as? String == newEdgeSerial)
            #expect(edgeTLS["last_reload_result"] as? String == "ok")
            // The node's own process is the same one (a reload, not a restart).
            #expect(edge.process?.isRunning == true && origin.process?.isRunning == true)

            // The old connections are still open and still answered, with the old certificate.
            #expect(edgeConnection.isOpen && originConnection.isOpen)
            #expect(try await edgeConnection.get("/fhir/Patient/r1").status == 200)
            #expect(try await originConnection.get("/fhir/Patient/r1").status == 200)
            #expect(try await edgeConnection.serverCertificateSerial() == oldEdgeSerial)
            // New connections get the new certificates, on the API and the peer listener alike.
            let fresh = try await RawTLSConnection.open(port: edge.ports["api"]!, pki: pki, identity: "client-a")
            #expect(try await fresh.get("/fhir/Patient/r1").status == 200)
            #expect(try await fresh.serverCertificateSerial() == newEdgeSerial)
            let peer = try await RawTLSConnection.open(port: origin.ports["peer"]!, pki: pki, identity: "edge-a")
            _ = try await peer.get("/replication/v1/policy")  // any answer: the handshake is done
            #expect(try await peer.serverCertificateSerial() == newOriginSerial)
            await peer.close()

            // The change stream was never cut, and both directions work after the reload: a
            // change at the origin reaches the edge, a write at the edge (a new connection to the
            // origin, with the edge's new client certificate) reaches the origin.
            #expect(try await client.put("\(originBase)/fhir/Patient/r2", #"{"resourceType":"Patient"}"#).status == 201)
            #expect(try await eventually(10) { try await client.get("\(edgeBase)/fhir/Patient/r2").status == 200 })
            #expect(try await client.put("\(edgeBase)/fhir/Patient/r3", #"{"resourceType":"Patient"}"#).status == 201)
            #expect(try await client.get("\(originBase)/fhir/Patient/r3").status == 200)
            #expect(!log(edge).contains("change stream interrupted"), "\(log(edge).suffix(2000))")

            // A key that does not belong to the certificate: refused, nothing changes.
            try FileManager.default.removeItem(atPath: pki.key("edge-a"))
            try FileManager.default.copyItem(atPath: pki.key("client-a"), toPath: pki.key("edge-a"))
            edge.signal(SIGHUP)
            #expect(try await eventually(10) { (tls(try await status(edgeOperator, edgeBase))["reloads_failed"] as? Int) == 1 })
            let refused = tls(try await status(edgeOperator, edgeBase))
            #expect((refused["last_reload_result"] as? String)?.contains("tls.key") == true, "\(refused)")
            #expect(refused["certificate_serial"] as? String == newEdgeSerial)
            // A certificate of another tenant: refused, naming both tenants.
            for ext in ["crt", "key"] {
                try FileManager.default.removeItem(atPath: "\(pki.dir)/edge-a.\(ext)")
                try FileManager.default.copyItem(atPath: "\(pki.dir)/edge-b.\(ext)", toPath: "\(pki.dir)/edge-a.\(ext)")
            }
            edge.signal(SIGHUP)
            #expect(try await eventually(10) { (tls(try await status(edgeOperator, edgeBase))["reloads_failed"] as? Int) == 2 })
            let wrongTenant = tls(try await status(edgeOperator, edgeBase))
            #expect((wrongTenant["last_reload_result"] as? String)?.contains("names tenant b") == true, "\(wrongTenant)")
            let after = try await RawTLSConnection.open(port: edge.ports["api"]!, pki: pki, identity: "client-a")
            #expect(try await after.get("/fhir/Patient/r1").status == 200)
            #expect(try await after.serverCertificateSerial() == newEdgeSerial)
            await after.close()
            #expect(log(edge).contains("reload refused"))

            // What an operator's monitoring sees.
            let metrics = try await edgeOperator.get("\(edgeBase)/metrics").text
            #expect(metrics.contains("edgecache_reloads_total{result=\"ok\"} 1"), "\(metrics)")
            #expect(metrics.contains("edgecache_reloads_total{result=\"failed\"} 2"))
            #expect(metrics.contains("edgecache_certificate_reload_pending 1"))
            let days = try #require(
                metrics.split(separator: "\n").first { $0.hasPrefix("edgecache_certificate_expiry_seconds{certificate=\"node\"}") }
                    .flatMap { Double($0.split(separator: " ").last ?? "") })
            #expect(abs(days / 86_400 - 400) < 2, "the certificate in use is the 400-day one: \(days / 86_400) days")

            await edgeConnection.close()
            await originConnection.close()
            await fresh.close()
            await edge.stop()
            await origin.stop()
            // Each reload, refused or not, is in the audit trail, and the trail still verifies.
            let verify = try runCLI(["audit", "verify", "--config", edge.configPath])
            #expect(verify.status == 0, "\(verify.output)")
            let export = try runCLI(["audit", "export", "--config", edge.configPath])
            #expect(export.output.components(separatedBy: "tls-reload").count - 1 >= 3, "\(export.output.suffix(3000))")
        }
    }
}
