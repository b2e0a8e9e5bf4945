import EdgeCacheCore
import Foundation
import Testing

/// The node's JSON contracts match the fixtures in docs/contracts/, which tools/edgecache_kit.py
/// checks every live `/status` and `listening.json` against: a renamed or dropped key breaks
/// this test, not a drill at 3 a.m. `EDGECACHE_WRITE_CONTRACTS=1` rewrites the fixtures.
@Suite struct NodeContractsTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/contracts")

    static var tls: TLSStatus {
        var tls = TLSStatus()
        tls.certificateSerial = "4f1c0a9e"
        tls.certificateNotAfter = 1_830_000_000
        tls.caNotAfter = 2_100_000_000
        tls.reloads = 1
        tls.lastReloadAt = 1_764_950_400_000
        tls.lastReloadResult = "ok"
        return tls
    }

    /// An edge in the middle of a bootstrap, with every optional member known.
    static var edge: EdgeStatus {
        var s = EdgeStatus()
        s.nodeID = "edge-a"
        s.tenant = "hospital-a"
        s.link = "bootstrapping"
        s.connected = true
        s.originHeadLSN = 1200
        s.originEpoch = "9b2f4c6d8e0a1b3c"
        s.appliedLSN = 1150
        s.stalenessMilliseconds = 2400
        s.eventsApplied = 1150
        s.bootstraps = 1
        var running = BootstrapStatus.Running()
        running.received = 300
        running.total = 1000
        running.elapsedMilliseconds = 1500
        running.ratePerSecond = 200
        running.secondsLeft = 4
        s.bootstrap.running = running
        var last = BootstrapStatus.Last()
        last.resources = 800
        last.milliseconds = 4000
        last.lsn = 900
        last.finishedAt = 1_764_950_000_000
        s.bootstrap.last = last
        s.cachedEntries = 800
        s.outboxQueued = 2
        s.outboxOldestQueuedMilliseconds = 61_000
        s.consent.laneLSN = 12
        s.consent.patientsWithRules = 3
        s.consent.blocks = 1
        s.consent.propagationSamples = 1
        s.consent.propagationP50Milliseconds = 40
        s.consent.propagationP99Milliseconds = 40
        s.consent.propagationMaxMilliseconds = 40
        s.consent.lastBlockLSN = 12
        s.consent.mainLSNAtLastBlock = 1100
        s.cacheBudgetBytes = 1 << 30
        s.cacheBytesEstimate = 1_600_000
        s.evictions = ["budget": 0, "retention": 0, "consent_purge": 0]
        s.tls = tls
        s.policyVersion = "2026-12-01"
        s.policySource = "origin"
        return s
    }

    static var origin: OriginStatus {
        var s = OriginStatus()
        s.nodeID = "origin-1"
        s.headLSN = 1200
        s.logEpoch = "9b2f4c6d8e0a1b3c"
        s.tls = tls
        s.policyVersion = "2026-12-01"
        s.policySource = "file"
        return s
    }

    static let samples: [(String, [UInt8])] = [
        ("status-edge.json", Contract.encode(edge)),
        ("status-origin.json", Contract.encode(origin)),
        ("listening.json", Contract.encode(ListeningFile(ports: ["api": 8443, "metrics": 9090, "peer": 8444]))),
        ("audit-anchor.json", Contract.encode(AuditAnchor(node: "edge-a", count: 42, head: String(repeating: "ab", count: 32)))),
        ("audit-anchor-reply.json", Contract.encode(AnchorAcknowledgement(acknowledged: 42))),
    ]

    @Test func fixturesMatchWhatTheTypesEncode() throws {
        for (name, bytes) in Self.samples {
            let url = Self.folder.appendingPathComponent(name)
            let encoded = try JSONSerialization.jsonObject(with: Data(bytes))
            if ProcessInfo.processInfo.environment["EDGECACHE_WRITE_CONTRACTS"] == "1" {
                try JSONSerialization.data(withJSONObject: encoded, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                    .write(to: url)
            }
            let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            #expect((fixture as? NSDictionary) == (encoded as? NSDictionary), "\(name) differs from what the contract encodes")
        }
    }

    @Test func contractsRoundTrip() throws {
        #expect(Contract.decode(EdgeStatus.self, from: Contract.encode(Self.edge)) == Self.edge)
        #expect(Contract.decode(OriginStatus.self, from: Contract.encode(Self.origin)) == Self.origin)
        var idle = EdgeStatus()
        idle.link = "origin-unreachable"
        #expect(Contract.decode(EdgeStatus.self, from: Contract.encode(idle)) == idle)
    }

    /// Unknown values are `null`, not missing; a bootstrap that is not running sends no progress.
    @Test func unknownValuesAreNullAndIdleBootstrapIsShort() throws {
        let text = String(decoding: Contract.encode(EdgeStatus()), as: UTF8.self)
        #expect(text.contains(#""staleness_ms":null"#))
        #expect(text.contains(#""origin_epoch":null"#))
        #expect(text.contains(#""propagation_p99_ms":null"#))
        #expect(text.contains(#""bootstrap":{"running":false}"#))
        var running = BootstrapStatus()
        running.running = BootstrapStatus.Running()
        #expect(String(decoding: Contract.encode(running), as: UTF8.self).contains(#""total":null"#))
    }

    @Test func anchorsOutsideTheContractAreRefused() {
        #expect(Contract.decode(AuditAnchor.self, from: Array(#"{"count":1,"head":"ab"}"#.utf8))?.headHash == nil)
        #expect(Contract.decode(AuditAnchor.self, from: Array(#"{"count":"1","head":"ab"}"#.utf8)) == nil)
        #expect(Contract.decode(AuditAnchor.self, from: Array(#"{"head":"ab"}"#.utf8)) == nil)
        let good = Contract.decode(AuditAnchor.self, from: Array(#"{"count":3,"head":"\#(String(repeating: "0f", count: 32))"}"#.utf8))
        #expect(good?.headHash?.count == 32)
        #expect(good?.node == nil)
    }
}
