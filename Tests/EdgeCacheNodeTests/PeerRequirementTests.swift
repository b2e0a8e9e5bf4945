import EdgeCacheHTTP
import EdgeCacheNode
import Foundation
import NIOSSL
import Testing

/// What an edge requires of its origin's certificate, and what `config check` warns about.
@Suite struct PeerRequirementTests {
    let pki = SharedPKI.main
    let dir = TempDir()

    func certificate(_ name: String) throws -> NIOSSLCertificate {
        try #require(try NIOSSLCertificate.fromPEMFile(pki.cert(name)).first)
    }

    @Test func onlyAnOriginCertificateIsAnOrigin() throws {
        let origin = PeerRequirement(role: .origin)
        #expect(origin.refusal(try certificate("origin")) == nil)
        #expect(origin.refusal(try certificate("edge-b"))?.contains("does not carry role 'origin'") == true)
        #expect(origin.refusal(try certificate("client-a"))?.contains("does not carry role 'origin'") == true)
        #expect(PeerRequirement.anyPeer.refusal(try certificate("edge-b")) == nil)
    }

    @Test func aConfiguredNodeNameAndURIMustBeCarriedToo() throws {
        #expect(PeerRequirement(role: .origin, node: "origin").refusal(try certificate("origin")) == nil)
        #expect(
            PeerRequirement(role: .origin, node: "origin-2").refusal(try certificate("origin"))?.contains("node name 'origin-2'") == true)
        #expect(PeerRequirement(role: .origin, uri: "urn:edgecache:role:origin").refusal(try certificate("origin")) == nil)
        let spiffe = PeerRequirement(role: .origin, uri: "spiffe://edgecache.example/origin")
        #expect(spiffe.refusal(try certificate("origin"))?.contains("spiffe://edgecache.example/origin") == true)
        #expect(PeerRequirement(role: .edge, tenant: "a").refusal(try certificate("edge-b"))?.contains("tenant 'a'") == true)
    }

    @Test func aCertificateIsDescribedByItsNamesNotItsKey() throws {
        let text = PeerRequirement.describe(try certificate("edge-b"))
        #expect(text.hasPrefix("role=edge tenant=b node=edge-b names=DNS:localhost,IP:127.0.0.1 serial="), "\(text)")
    }

    @Test func configCheckWarnsWhenNonOriginCertificatesNameTheOriginsHost() throws {
        let pair = PairConfig(dir: dir.path, pki: pki)
        let path = try pair.writeEdge(tenant: "a", originPort: 9443, extra: "")
        var config = try NodeConfig.load(path: path)
        // The development edge certificate names 127.0.0.1, the origin.url host.
        let warnings = config.originHostWarnings()
        #expect(warnings.count == 1 && warnings[0].contains("127.0.0.1") && warnings[0].contains("tls.cert"), "\(warnings)")
        config.originURL = "https://origin.edgecache.example:9443"
        #expect(config.originHostWarnings().isEmpty)
        let check = try runCLI(["config", "check", "--config", path])
        #expect(
            check.status == 0 && check.output.contains("warning: origin.url's host 127.0.0.1") && check.output.contains("OK"),
            "\(check.output)")
        // An edge certificate that names only the edge's own host leaves nothing to warn about.
        let origin = try NodeConfig.load(path: try pair.writeOrigin())
        #expect(origin.originHostWarnings().isEmpty)
    }

    @Test func originNodeAndURIAreReadFromTheConfig() throws {
        let pair = PairConfig(dir: dir.path, pki: pki)
        let path = try pair.writeEdge(tenant: "a", originPort: 9443)
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "connect_timeout_ms: 1000 }", with: "connect_timeout_ms: 1000, node: origin, uri: \"spiffe://edgecache.example/origin\" }")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try NodeConfig.load(path: path)
        #expect(config.originNode == "origin" && config.originURI == "spiffe://edgecache.example/origin")
        #expect(PeerRequirement.origin(config) == PeerRequirement(role: .origin, node: "origin", uri: "spiffe://edgecache.example/origin"))
    }
}
