import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

/// Anchors are keyed by the node name of the sending edge's certificate, never by its body.
@Suite(.serialized) struct AnchorIdentityTests {
    let dir = TempDir()

    static let headA = String(repeating: "a1", count: 32)
    static let headB = String(repeating: "b2", count: 32)

    static func anchor(node: String?, count: Int, head: String) -> String {
        (node.map { #"{"node":"\#($0)","# } ?? "{") + #""count":\#(count),"head":"\#(head)"}"#
    }

    @Test func anAnchorForAnotherNodeIsRefusedAuditedAndLeavesThatNodesAnchorUnchanged() async throws {
        let pki = SharedPKI.main
        let pair = PairConfig(dir: dir.path, pki: pki)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let url = "https://127.0.0.1:\(origin.port("peer"))/replication/v1/audit-anchor"
        let edgeA = try TestClient(pki: pki, identity: "edge-a")
        // A second edge of tenant a, and an edge certificate that names no node.
        let second = try mintEdgeCertificate(pki: pki, tenant: "a", node: "edge-a-2")
        let nameless = try mintEdgeCertificate(pki: pki, tenant: "a", node: nil)
        let edgeA2 = try TestClient(pki: pki, identity: second)
        let noNode = try TestClient(pki: pki, identity: nameless)
        defer { Task { for client in [edgeA, edgeA2, noNode] { await client.shutdown() } } }
        let json = [("Content-Type", "application/json")]

        #expect(
            try await edgeA.send(.POST, url, headers: json, body: Self.anchor(node: "edge-a", count: 5, head: Self.headA)).status == 200)
        // edge-a-2 tries to push edge-a's anchor far ahead (which would block edge-a's own anchors).
        let forged = try await edgeA2.send(.POST, url, headers: json, body: Self.anchor(node: "edge-a", count: 1000, head: Self.headB))
        #expect(forged.status == 403, "\(forged.text)")
        #expect(forged.text.contains("OperationOutcome") && forged.text.contains("edge-a-2"), "\(forged.text)")
        // edge-a's anchor is unchanged: the same head is acknowledged again, a lower count still contradicts it.
        #expect(
            try await edgeA.send(.POST, url, headers: json, body: Self.anchor(node: "edge-a", count: 5, head: Self.headA)).status == 200)
        #expect(
            try await edgeA.send(.POST, url, headers: json, body: Self.anchor(node: "edge-a", count: 4, head: Self.headA)).status == 409)
        // edge-a-2 anchors under its own name (in the body or taken from its certificate).
        #expect(
            try await edgeA2.send(.POST, url, headers: json, body: Self.anchor(node: "edge-a-2", count: 7, head: Self.headB)).status == 200)
        #expect(try await edgeA2.send(.POST, url, headers: json, body: Self.anchor(node: nil, count: 8, head: Self.headB)).status == 200)
        // A certificate without a node name cannot anchor at all.
        let unnamed = try await noNode.send(.POST, url, headers: json, body: Self.anchor(node: nil, count: 1, head: Self.headA))
        #expect(unnamed.status == 403 && unnamed.text.contains("names no node"), "\(unnamed.text)")

        // The refusals are in the origin's audit trail.
        try await Task.sleep(for: .milliseconds(300))
        let records = try await origin.runtime.auditLog.store.records().map(\.record)
        let denied = records.filter { $0.action == "denied-replication-audit-anchor" }
        #expect(denied.count == 2 && denied.allSatisfy { $0.outcome == 403 && $0.tenant == "a" }, "\(records.map(\.action))")
        await origin.stop()
    }
}

/// Issues another edge certificate from `pki`'s CA with the openssl CLI (as tools/gen-certs.sh
/// does), naming `node` (or no node); returns its identity name for ``TestClient``.
func mintEdgeCertificate(pki: TestPKI, tenant: String, node: String?) throws -> String {
    let name = "edge-\(tenant)-\(node ?? "nameless")-\(UUID().uuidString.prefix(8).lowercased())"
    var sans = "DNS:localhost,IP:127.0.0.1,URI:urn:edgecache:tenant:\(tenant),URI:urn:edgecache:role:edge"
    if let node { sans += ",URI:urn:edgecache:node:\(node)" }
    let ext = pki.dir + "/\(name).ext"
    try """
    basicConstraints=critical,CA:FALSE
    keyUsage=critical,digitalSignature,keyEncipherment
    extendedKeyUsage=serverAuth,clientAuth
    subjectAltName=\(sans)

    """.write(toFile: ext, atomically: true, encoding: .utf8)
    let serial = "0x" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16)
    let steps: [[String]] = [
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pki.key(name)],
        ["req", "-new", "-key", pki.key(name), "-subj", "/O=EdgeCache Development/CN=\(name)", "-out", pki.dir + "/\(name).csr"],
        [
            "x509", "-req", "-in", pki.dir + "/\(name).csr", "-CA", pki.ca, "-CAkey", pki.dir + "/ca.key", "-set_serial", String(serial),
            "-days", "30", "-sha256", "-extfile", ext, "-out", pki.cert(name),
        ],
    ]
    for arguments in steps {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("openssl \(arguments[0]) failed") }
    }
    return name
}
