import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Testing

/// `/metrics` in the Prometheus text format, on both roles.
@Suite(.serialized) struct MetricsTests {
    let dir = TempDir()

    /// The value of one sample line (`name{labels} value`), if present.
    func value(_ text: String, _ sample: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }

    /// Debian's `promtool check metrics` (Prometheus's own linter) on `text` (`$PROMTOOL`, or on
    /// the PATH; `tools/install-promtool` fetches it). CI sets EDGECACHE_REQUIRE_PROMTOOL=1, so
    /// there a missing promtool fails the test.
    func promtool(_ text: String) throws -> (status: Int32, output: String)? {
        let candidates = [ProcessInfo.processInfo.environment["PROMTOOL"], "/usr/bin/promtool", "/usr/local/bin/promtool"].compactMap { $0 }
        let path = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else {
            #expect(ProcessInfo.processInfo.environment["EDGECACHE_REQUIRE_PROMTOOL"] == nil, "promtool is required here")
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func edgeAndOriginExposeWhatOperatorsWatch() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let originConfig = try pair.writeOrigin()
        let origin = try await InProcessNode(configPath: originConfig)
        let edgeConfig = try pair.writeEdge(tenant: "a", originPort: origin.port("peer"))
        let edge = try await InProcessNode(configPath: edgeConfig)
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let edgeBase = "https://127.0.0.1:\(edge.port("api"))"
        let originBase = "https://127.0.0.1:\(origin.port("api"))"
        #expect(try await client.put("\(edgeBase)/fhir/Patient/m1", #"{"resourceType":"Patient"}"#).status == 201)
        for _ in 0..<3 { #expect(try await client.get("\(edgeBase)/fhir/Patient/m1").status == 200) }
        #expect(
            try await client.put("\(originBase)/fhir/Observation/m2", #"{"resourceType":"Observation","status":"final"}"#).status == 201)
        #expect(try await eventually(10) { edge.runtime.edgeStore!.stream.counters.checkpoint >= 2 })
        // Written at the origin, delivered by the stream: a hit too.
        #expect(try await client.get("\(edgeBase)/fhir/Observation/m2").status == 200)

        try await Task.sleep(for: .milliseconds(300))  // the audit trail is written every 100 ms
        let scrape = try await client.get("\(edgeBase)/metrics")
        #expect(scrape.status == 200 && scrape.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = scrape.text
        #expect(value(text, #"edgecache_cache_reads_total{class="operational",result="hit"}"#) == 3, "\(text)")
        #expect(value(text, #"edgecache_cache_reads_total{class="clinical",result="hit"}"#) == 1, "\(text)")
        #expect(value(text, "edgecache_link_live") == 1)
        #expect(value(text, "edgecache_applied_lsn") ?? 0 >= 2)
        // m1 was written through the edge (cached at once, so its stream event is skipped), m2 applied.
        #expect(value(text, #"edgecache_stream_events_total{result="applied"}"#) ?? 0 >= 1)
        #expect(
            (value(text, #"edgecache_stream_events_total{result="applied"}"#) ?? 0)
                + (value(text, #"edgecache_stream_events_total{result="skipped"}"#) ?? 0) >= 2)
        #expect(value(text, #"edgecache_outbox_entries{state="done"}"#) == 1)
        #expect(value(text, #"edgecache_outbox_entries{state="queued"}"#) == 0)
        #expect(value(text, #"edgecache_evictions_total{reason="budget"}"#) == 0)
        #expect(value(text, #"edgecache_consent_propagation_seconds_bucket{le="+Inf"}"#) == 0)
        #expect((value(text, #"edgecache_certificate_expiry_seconds{certificate="node"}"#) ?? 0) > 86_400)
        #expect(value(text, #"edgecache_data_key_version{tenant="a"}"#) == 1)
        #expect(value(text, #"edgecache_requests_total{api="fhir",method="GET",code="200"}"#) == 4)
        #expect(!text.contains("m1") && !text.contains("m2"), "no resource ids in metrics")
        if let check = try promtool(text) { #expect(check.status == 0, "promtool: \(check.output)") }

        let ready = try await client.get("\(edgeBase)/readyz")
        #expect(ready.status == 200 && ready.json["status"] as? String == "serving", "\(ready.text)")
        #expect(ready.json["checks"] as? [String: String] == ["store": "ok", "keys": "ok", "policy": "ok"])
        let originReady = try await client.get("\(originBase)/readyz")
        #expect(originReady.status == 200 && originReady.json["status"] as? String == "ready", "\(originReady.text)")

        // The origin's counters cover every tenant: only the origin's own certificate reads them.
        #expect(try await client.get("\(originBase)/metrics").status == 403)
        let originOperator = try TestClient(pki: SharedPKI.main, identity: "origin")
        let originScrape = try await originOperator.get("\(originBase)/metrics")
        await originOperator.shutdown()
        #expect(originScrape.status == 200)
        #expect(value(originScrape.text, "edgecache_head_lsn") ?? 0 >= 2)
        #expect(value(originScrape.text, #"edgecache_up{role="origin"}"#) == 1)
        if let check = try promtool(originScrape.text) { #expect(check.status == 0, "promtool: \(check.output)") }
        // The terminal dashboard, with the node's own certificate (not a client's).
        let board = try runCLI(["status", "--config", edgeConfig, "--once"])
        #expect(board.status == 0, "\(board.output)")
        #expect(board.output.contains("link         LIVE") && board.output.contains("CONVERGED"), "\(board.output)")
        #expect(board.output.contains("outbox       queued 0") && board.output.contains("certificate  node expires in"))
        let originBoard = try runCLI(["status", "--config", originConfig, "--once"])
        #expect(originBoard.status == 0 && originBoard.output.contains("head LSN"), "\(originBoard.output)")

        // Counters kept in the databases carry on across a restart; event counters start again.
        let applied = value(text, #"edgecache_stream_events_total{result="applied"}"#) ?? 0
        let audited = value(text, "edgecache_audit_records_total") ?? 0
        #expect(audited > 0)
        await edge.stop()
        let restarted = try await InProcessNode(configPath: edgeConfig)
        let again = try await client.get("https://127.0.0.1:\(restarted.port("api"))/metrics").text
        #expect(value(again, #"edgecache_stream_events_total{result="applied"}"#) == applied, "\(again)")
        #expect((value(again, "edgecache_audit_records_total") ?? 0) >= audited)
        #expect(value(again, #"edgecache_cache_reads_total{class="operational",result="hit"}"#) == nil)
        await client.shutdown()
        await restarted.stop()
        await origin.stop()
        // A node that is not running: the dashboard says so and --once exits 1.
        let down = try runCLI(["status", "--config", edgeConfig, "--once"])
        #expect(down.status == 1 && down.output.contains("NOT ANSWERING"), "\(down.output)")
    }
}
