import EdgeCacheCore
import EdgeCacheHTTP
import Foundation
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// `edgecache demo --tour`: the demo's printed steps, run by the demo itself against its own
/// origin and edge over mutual TLS with the clinical app's certificate. Each step prints the
/// request and the answer's key lines and says whether it answered as expected; the tour ends
/// the demo, and `edgecache demo --tour` exits 0 only if every step did.
struct DemoTour: Service {
    /// Whether every step passed (read after the service group has stopped).
    final class Result: Sendable {
        private let state = Mutex<(passed: Int, failed: Int)>((0, 0))
        func record(_ ok: Bool) { state.withLock { ok ? ($0.passed += 1) : ($0.failed += 1) } }
        var counts: (passed: Int, failed: Int) { state.withLock { $0 } }
        var passed: Bool { counts.failed == 0 && counts.passed > 0 }
    }

    let workDir: String
    let ports: Demo.Ports
    let control: DemoLinkControl
    let edge: EdgeNode
    let result: Result

    init(workDir: String, ports: Demo.Ports, control: DemoLinkControl, edge: EdgeNode, result: Result) {
        self.workDir = workDir
        self.ports = ports
        self.control = control
        self.edge = edge
        self.result = result
    }

    func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// A client for `base` presenting `cert`/`key` from the demo's PKI.
    func client(_ base: String, identity: String) throws -> OriginClient {
        var config = try NodeConfig.load(path: workDir + "/edge.yaml")
        config.certFile = "\(workDir)/certs/\(identity).crt"
        config.keyFile = "\(workDir)/certs/\(identity).key"
        config.originURL = base
        config.originRequestTimeoutMilliseconds = 10_000
        return try OriginClient(config: config, peer: .anyPeer)
    }

    /// Sends one request, prints it and the answer's key lines, and checks the answer.
    @discardableResult
    func step(
        _ title: String, _ client: OriginClient, _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [],
        body: String? = nil,
        expect: (OriginClient.Reply) -> String?
    ) async -> OriginClient.Reply? {
        say("\n\(title)")
        say("  > \(method.rawValue) \(client.baseURL)\(path)\(headers.map { "  [\($0.0): \($0.1)]" }.joined())")
        let reply: OriginClient.Reply
        do {
            reply = try await client.send(method: method, path: path, headers: headers, body: body.map { Array($0.utf8) })
        } catch {
            say("  FAILED: no answer (\(error))")
            result.record(false)
            return nil
        }
        say("  < \(reply.status)")
        for name in ["ETag", "Cache-Status", "Age", "EdgeCache-Write-Status", "Location"] {
            if let value = reply.headers.first(name: name) { say("  < \(name): \(value)") }
        }
        check(expect(reply))
        return reply
    }

    func check(_ problem: String?) {
        if let problem {
            say("  FAILED: \(problem)")
            result.record(false)
        } else {
            say("  ok")
            result.record(true)
        }
    }

    static func header(_ reply: OriginClient.Reply, _ name: String) -> String { reply.headers.first(name: name) ?? "" }

    /// `/status` of the edge, read with the edge's own certificate (what `edgecache status` shows).
    func status(_ client: OriginClient) async -> EdgeStatus? {
        guard let reply = try? await client.get("/status"), reply.status == 200 else { return nil }
        return Contract.decode(EdgeStatus.self, from: reply.body)
    }

    func run() async throws {
        for _ in 0..<300 where !edge.link.isLive {
            try await Task.sleep(for: .milliseconds(100))
        }
        let edgeURL = "https://127.0.0.1:\(ports.edgeAPI)"
        let originURL = "https://127.0.0.1:\(ports.originAPI)"
        let app = "client-\(Demo.tenant)"
        let atEdge = try client(edgeURL, identity: app)
        let atOrigin = try client(originURL, identity: app)
        let edgeStatus = try client(edgeURL, identity: "edge-\(Demo.tenant)")
        do {
            try await walk(atEdge: atEdge, atOrigin: atOrigin, edgeStatus: edgeStatus, edgeURL: edgeURL, originURL: originURL)
        } catch {
            result.record(false)
            say("  FAILED: \(error)")
        }
        // Shut down before the demo's nodes stop (an HTTP client must never be left to deinit).
        await atEdge.shutdown()
        await atOrigin.shutdown()
        await edgeStatus.shutdown()
        let counts = result.counts
        say("\ndemo tour: \(counts.passed) passed, \(counts.failed) failed")
    }

    /// The steps, in the order the banner prints them.
    private func walk(
        atEdge: OriginClient, atOrigin: OriginClient, edgeStatus: OriginClient, edgeURL: String, originURL: String
    ) async throws {
        say("EdgeCache demo tour: origin \(originURL), edge \(edgeURL), work folder \(workDir)")
        let patientV1 = #"{"resourceType":"Patient","id":"demo-1","name":[{"family":"Nightingale","given":["Florence"]}]}"#
        let patientV2 =
            #"{"resourceType":"Patient","id":"demo-1","name":[{"family":"Nightingale","given":["Florence"]}],"gender":"female"}"#

        await step(
            "# 1. Create a Patient through the edge (forwarded to the origin, cached at the edge)", atEdge, .PUT, "/fhir/Patient/demo-1",
            body: patientV1
        ) {
            $0.status == 201 ? nil : "expected 201"
        }
        await step("# 2. Read it back from the edge: a hit", atEdge, .GET, "/fhir/Patient/demo-1") {
            $0.status == 200 && Self.header($0, "Cache-Status").hasPrefix("edgecache; hit")
                ? nil : "expected 200 and Cache-Status: edgecache; hit"
        }
        await step("# 3. Update it at the origin (version 2)", atOrigin, .PUT, "/fhir/Patient/demo-1", body: patientV2) {
            $0.status == 200 ? nil : "expected 200"
        }
        // The stream pushes version 2 to the edge; give it up to 2 s (it usually takes milliseconds).
        for _ in 0..<40 {
            if let reply = try? await atEdge.get("/fhir/Patient/demo-1"), Self.header(reply, "ETag") == "W/\"2\"" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        await step("# 4. The edge serves version 2 as a hit, pushed by the change stream", atEdge, .GET, "/fhir/Patient/demo-1") {
            Self.header($0, "ETag") == "W/\"2\"" && Self.header($0, "Cache-Status").hasPrefix("edgecache; hit")
                ? nil : "expected ETag W/\"2\" and a hit"
        }

        say("\n# 5. Cut the edge's link to the origin (edgecache demo link down)")
        let down = await control.set(up: false)
        say("  \(down)")
        check(down.hasPrefix("ok") ? nil : "the edge did not notice the outage")
        await step(
            "# 6. Read at the edge: 200 from the cache, labelled origin-unreachable, with an Age", atEdge, .GET, "/fhir/Patient/demo-1"
        ) {
            $0.status == 200 && Self.header($0, "Cache-Status").contains("origin-unreachable") && !Self.header($0, "Age").isEmpty
                ? nil : "expected 200, Cache-Status detail=\"origin-unreachable\" and an Age header"
        }
        await step(
            "# 7. Write at the edge: 202 Accepted, queued durably", atEdge, .PUT, "/fhir/Observation/demo-hr-1",
            headers: [("Idempotency-Key", "demo-outage-1")], body: Demo.outageObservation
        ) {
            $0.status == 202 && Self.header($0, "EdgeCache-Write-Status").hasPrefix("queued")
                ? nil : "expected 202 and EdgeCache-Write-Status: queued"
        }
        await step("# 8. Read the queued write back at the edge: pending", atEdge, .GET, "/fhir/Observation/demo-hr-1") {
            $0.status == 200 && Self.header($0, "Cache-Status").contains("pending-write")
                ? nil : "expected 200 and Cache-Status detail=\"pending-write\""
        }
        say("\n# 9. The edge's status (edgecache status --config \(workDir)/edge.yaml --once)")
        let during = await status(edgeStatus)
        let linkDuring = during?.link ?? "?"
        let queuedDuring = during?.outboxQueued
        say("  link \(linkDuring), outbox queued \(queuedDuring.map(String.init) ?? "?")")
        check(linkDuring != "live" && queuedDuring == 1 ? nil : "expected the link down and 1 queued write")

        say("\n# 10. Restore the link (edgecache demo link up): the edge replays its outbox on its own")
        let up = await control.set(up: true)
        say("  \(up)")
        check(up.hasPrefix("ok") ? nil : "the edge did not come back and drain its outbox")
        await step("# 11. The write reached the origin, once", atOrigin, .GET, "/fhir/Observation/demo-hr-1") {
            $0.status == 200 && Self.header($0, "ETag") == "W/\"1\"" ? nil : "expected 200 and ETag W/\"1\""
        }
        await step(
            "# 11b. The same write sent again with the same Idempotency-Key is not applied twice", atEdge, .PUT,
            "/fhir/Observation/demo-hr-1",
            headers: [("Idempotency-Key", "demo-outage-1")], body: Demo.outageObservation
        ) {
            [200, 201].contains($0.status) && Self.header($0, "ETag") == "W/\"1\"" ? nil : "expected the stored answer (version 1)"
        }
        say("\n# 12. The edge has converged (edgecache status --config \(workDir)/edge.yaml --once)")
        var converged = false
        var after: EdgeStatus?
        for _ in 0..<100 {
            after = await status(edgeStatus)
            if let after, after.link == "live", after.outboxQueued == 0, after.appliedLSN == after.originHeadLSN {
                converged = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        say(
            "  link \(after?.link ?? "?"), outbox queued \(after.map { String($0.outboxQueued) } ?? "?"), "
                + "applied LSN \(after.map { String($0.appliedLSN) } ?? "?") of origin head \(after.map { String($0.originHeadLSN) } ?? "?")"
        )
        check(converged ? nil : "expected link live, nothing queued, applied LSN = origin head")
        await step("# 13. The edge serves the replayed write as an ordinary hit", atEdge, .GET, "/fhir/Observation/demo-hr-1") {
            $0.status == 200 && Self.header($0, "ETag") == "W/\"1\"" && Self.header($0, "Cache-Status").hasPrefix("edgecache; hit")
                && !Self.header($0, "Cache-Status").contains("pending") ? nil : "expected a hit of version 1"
        }
    }
}
