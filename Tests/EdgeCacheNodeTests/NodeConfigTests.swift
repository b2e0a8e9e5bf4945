import EdgeCacheNode
import Foundation
import Testing

@Suite struct NodeConfigTests {
    let edge = """
        role: edge
        node_id: edge-1
        tenant: st-mary
        listen: { api: "127.0.0.1:8444" }
        origin: { url: "https://127.0.0.1:9443" }
        tls: { cert: certs/edge.crt, key: certs/edge.key, ca: certs/ca.crt }
        data_dir: data
        keys: { kek_file: edge.kek }
        """

    @Test func parsesAnEdgeAndResolvesPathsAgainstTheConfigFolder() throws {
        let config = try NodeConfig.parse(edge, file: "/etc/edgecache/edge.yaml")
        #expect(config.role == .edge && config.tenant == "st-mary")
        #expect(config.apiAddress.host == "127.0.0.1" && config.apiAddress.port == 8444)
        #expect(config.certFile == "/etc/edgecache/certs/edge.crt")
        #expect(config.dataDir == "/etc/edgecache/data")
        #expect(config.originURL == "https://127.0.0.1:9443")
    }

    func error(_ text: String) -> ConfigError? {
        do {
            _ = try NodeConfig.parse(text, file: "edge.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test func errorsNameTheFileLineAndFix() throws {
        let typo = edge + "\nlimits: { max_body_byte: 10 }\n"
        let unknown = try #require(error(typo))
        #expect(unknown.line == 9)
        #expect(unknown.description.hasPrefix("edge.yaml:9: unknown key 'limits.max_body_byte'"))

        let wrongValue = edge.replacingOccurrences(of: "data_dir: data", with: "data_dir: data\nreplication: { heartbeat_ms: fast }")
        let value = try #require(error(wrongValue))
        #expect(value.line == 8 && value.message.contains("whole number"), "\(value)")

        let outOfRange = edge + "\nreplication: { heartbeat_ms: 5 }\n"
        #expect(error(outOfRange)?.message.contains("between 50 and 10000") == true)

        let badRole = edge.replacingOccurrences(of: "role: edge", with: "role: cloud")
        #expect(error(badRole)?.line == 1)

        let missingTenant = edge.replacingOccurrences(of: "tenant: st-mary\n", with: "")
        #expect(error(missingTenant)?.message.contains("needs 'tenant'") == true)

        let httpOrigin = edge.replacingOccurrences(of: "https://127.0.0.1:9443", with: "http://127.0.0.1:9443")
        #expect(error(httpOrigin)?.message.contains("https://") == true)

        let edgeWithPeer = edge.replacingOccurrences(
            of: #"{ api: "127.0.0.1:8444" }"#, with: #"{ api: "127.0.0.1:8444", peer: "127.0.0.1:9" }"#)
        #expect(error(edgeWithPeer)?.message.contains("origin key") == true)

        let broken = try #require(error("role: edge\n  bad: [indent"))
        #expect(broken.line != nil && broken.message.contains("not valid YAML"))
    }

    @Test func originMustNotCarryEdgeKeys() {
        let origin = """
            role: origin
            node_id: o
            tenant: x
            listen: { api: "127.0.0.1:1", peer: "127.0.0.1:2" }
            tls: { cert: a, key: b, ca: c }
            data_dir: d
            keys: { kek_file: k }
            """
        #expect(error(origin)?.message.contains("remove 'tenant' and 'origin'") == true)
    }

    let auth = """

        auth:
          issuers:
            - issuer: https://idp.st-mary.example
              tenant: st-mary
              audience: https://edge.st-mary.example/fhir
              keys: [certs/idp.pub.pem, { file: /keys/idp-2.pem, kid: k2 }]
          client_certificates: false
          leeway_s: 30
        """

    @Test func parsesTheAuthSection() throws {
        let config = try NodeConfig.parse(edge + auth, file: "/etc/edgecache/edge.yaml")
        let issuer = try #require(config.auth.issuers.first)
        #expect(issuer.issuer == "https://idp.st-mary.example" && issuer.tenant == "st-mary")
        #expect(issuer.audience == "https://edge.st-mary.example/fhir")
        #expect(issuer.keys.map(\.file) == ["/etc/edgecache/certs/idp.pub.pem", "/keys/idp-2.pem"])
        #expect(issuer.keys.map(\.kid) == [nil, "k2"])
        #expect(!config.auth.clientCertificates && config.auth.leewaySeconds == 30)
        let plain = try NodeConfig.parse(edge, file: "edge.yaml")
        #expect(plain.auth.issuers.isEmpty && plain.auth.clientCertificates)
    }

    @Test func authErrorsNameTheLine() throws {
        let typo = try #require(error(edge + auth.replacingOccurrences(of: "audience:", with: "audiences:")))
        #expect(typo.line == 11 && typo.message.contains("'auth.issuers[0].audience' is required"), "\(typo)")
        let unknown = try #require(error(edge + auth.replacingOccurrences(of: "leeway_s: 30", with: "leeway: 30")))
        #expect(unknown.line == 16 && unknown.message.contains("unknown key 'auth.leeway'"), "\(unknown)")
        let otherTenant = try #require(
            error(edge + auth.replacingOccurrences(of: "tenant: st-mary\n      audience", with: "tenant: st-luke\n      audience")))
        #expect(otherTenant.line == 11 && otherTenant.message.contains("this edge serves tenant 'st-mary'"), "\(otherTenant)")
        let notBool = try #require(
            error(edge + auth.replacingOccurrences(of: "client_certificates: false", with: "client_certificates: maybe")))
        #expect(notBool.line == 15 && notBool.message.contains("true or false"), "\(notBool)")
        let noKeys = try #require(
            error(edge + auth.replacingOccurrences(of: "keys: [certs/idp.pub.pem, { file: /keys/idp-2.pem, kid: k2 }]", with: "keys: []")))
        #expect(noKeys.line == 11 && noKeys.message.contains("keys' is required"), "\(noKeys)")
        let nobody = try #require(error(edge + "\nauth: { client_certificates: false }\n"))
        #expect(nobody.line == 9 && nobody.message.contains("needs at least one entry"), "\(nobody)")
    }
}
