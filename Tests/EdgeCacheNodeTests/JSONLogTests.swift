import EdgeCacheNode
import Foundation
import Logging
import Synchronization
import Testing

/// `log.format: json`: one JSON object per line, no patient or resource identifiers.
@Suite struct JSONLogTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func linesAreJSONAndIdentifiersAreRedacted() throws {
        let sink = Lines()
        var logger = Logger(label: "edgecache") { label in JSONLogHandler(label: label, level: .info, write: { sink.add($0) }) }
        logger[metadataKey: "node"] = "edge-stmary-1"
        logger.debug("not at this level")
        logger.warning(
            "change stream interrupted \"quoted\"\nsecond line",
            metadata: ["reason": "closed by the peer", "patient": "Patient/mrn-4471", "id": "mrn-4471", "count": "3"])
        logger.error("again", metadata: ["patient": "Patient/mrn-4471"])
        let lines = sink.all
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasSuffix("}\n") && $0.filter { $0 == "\n" }.count == 1 })
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["level"] as? String == "warning" && first["label"] as? String == "edgecache")
        #expect(first["message"] as? String == "change stream interrupted \"quoted\"\nsecond line")
        #expect((first["time"] as? String)?.contains("T") == true)
        let metadata = try #require(first["metadata"] as? [String: String])
        #expect(metadata["node"] == "edge-stmary-1" && metadata["reason"] == "closed by the peer" && metadata["count"] == "3")
        #expect(metadata["patient"]?.hasPrefix("redacted:") == true && metadata["id"]?.hasPrefix("redacted:") == true)
        #expect(!lines.joined().contains("mrn-4471"))
        // The same value gives the same token within a run, so lines can be correlated.
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect((second["metadata"] as? [String: String])?["patient"] == metadata["patient"])
    }

    @Test func theFormatIsChecked() throws {
        let base = """
            role: origin
            node_id: o
            listen: { api: "127.0.0.1:1", peer: "127.0.0.1:2" }
            tls: { cert: c, key: k, ca: a }
            data_dir: d
            keys: { kek_file: k }
            """
        #expect(try NodeConfig.parse(base + "\nlog: { format: json }\n", file: "o.yaml").logFormat == "json")
        #expect(try NodeConfig.parse(base, file: "o.yaml").logFormat == "text")
        do {
            _ = try NodeConfig.parse(base + "\nlog: { level: info, format: xml }\n", file: "o.yaml")
            Issue.record("log.format: xml was accepted")
        } catch {
            #expect(error.line == 7 && error.message.contains("text or json"), "\(error)")
        }
    }
}
