import Foundation
import NIOCore
import NIOHTTP1
import Testing

extension IntegrationSuites {
    /// Large JSON bodies (issue 13, item 4): parsed without a large blow-up, capped per client and
    /// per node (429/503 with Retry-After), and the memory they used is given back afterwards.
    @Suite struct LargeBodyMemoryProcessTests {
        let dir = TempDir()

        /// A ~3.8 MB resource whose bulk is one array of small numbers (the worst case for a tree).
        static let arrayResource: [UInt8] = {
            var body = Array(
                #"{"resourceType":"Observation","status":"final","code":{"text":"samples"},"component":[{"code":{"text":"x"},"valueSampledData":{"origin":{"value":0},"dimensions":1,"data":"0"}}],"extension":[{"url":"urn:x","valueString":"y"}],"x":["#
                    .utf8)
            body.reserveCapacity(3_800_100)
            while body.count < 3_800_000 { body.append(contentsOf: Array("1,".utf8)) }
            body.append(contentsOf: Array("1]}".utf8))
            return body
        }()
        /// A ~3.8 MB JSON array (not a resource at all).
        static let bareArray: [UInt8] = {
            var body: [UInt8] = [UInt8(ascii: "[")]
            while body.count < 3_800_000 { body.append(contentsOf: Array("1,".utf8)) }
            body.append(contentsOf: Array("1]".utf8))
            return body
        }()

        @Test func largeBodiesAreCappedAndTheirMemoryIsReturned() async throws {
            let config = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = NodeProcess(configPath: try config.writeOrigin(), dataDir: dir.path + "/origin-data")
            try await origin.start(expectListeners: 2)
            let api = "https://127.0.0.1:\(origin.ports["api"]!)"
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let other = try TestClient(pki: SharedPKI.main, identity: "client-b")
            // Warm up (TLS, SQLite, key ring), then the baseline.
            for i in 0..<5 {
                _ = try await client.put(
                    "\(api)/fhir/Observation/w\(i)", #"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#)
            }
            try await Task.sleep(for: .seconds(1))
            let memory = origin.memory
            let baseline = memory.rss
            memory.resetPeak()

            // One bare array: refused with an OperationOutcome.
            let bare = try await client.send(.POST, "\(api)/fhir/Observation", bodyBytes: Self.bareArray, timeout: .seconds(60))
            #expect(bare.status == 400 && bare.json["resourceType"] as? String == "OperationOutcome", "\(bare.status)")
            let afterOne = memory.peak - baseline

            // Eight at once from one client, eight more from another: over the caps → 429 / 503 with Retry-After.
            let replies = try await withThrowingTaskGroup(of: TestClient.Reply.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        try await (i % 2 == 0 ? client : other).send(
                            .PUT, "\(api)/fhir/Observation/array-\(i)", bodyBytes: Self.arrayResource, timeout: .seconds(120))
                    }
                }
                var all: [TestClient.Reply] = []
                for try await reply in group { all.append(reply) }
                return all
            }
            let statuses = replies.map(\.status).sorted()
            let refused = replies.filter { $0.status == 429 || $0.status == 503 }
            #expect(!refused.isEmpty, "\(statuses)")
            #expect(refused.allSatisfy { $0.header("Retry-After") != nil && $0.json["resourceType"] as? String == "OperationOutcome" })
            #expect(replies.allSatisfy { [200, 201, 429, 503].contains($0.status) }, "\(statuses)")
            let peak = memory.peak - baseline

            // After the load, resident memory returns near the baseline.
            var after = memory.rss - baseline
            _ = try await eventually(10, every: 0.5) {
                after = memory.rss - baseline
                return after < 100
            }
            let figures = """
                origin RSS baseline \(Int(baseline)) MiB; one 3.8 MB array +\(Int(afterOne)) MiB; 16 concurrent resources \
                (statuses \(statuses)) peak +\(Int(peak)) MiB; after the load +\(Int(after)) MiB
                """
            print("large-body figures: \(figures)")
            #expect(afterOne < 40, "\(figures)")
            #expect(peak < 400, "\(figures)")
            #expect(after < 100, "\(figures)")
            await client.shutdown()
            await other.shutdown()
            await origin.stop()
        }
    }
}
