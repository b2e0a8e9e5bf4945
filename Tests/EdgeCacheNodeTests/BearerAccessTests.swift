import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheTestSupport
import Foundation
import NIOHTTP1
import Testing

/// Bearer JWTs with SMART scopes on the API listeners, beside client certificates.
@Suite(.serialized) struct BearerAccessTests {
    static let sharedKeys = Result { try TokenKeys() }
    let dir = TempDir()
    let keys: TokenKeys
    let iss = "https://idp.a.example"
    let aud = "https://edgecache.a.example/fhir"

    init() throws { keys = try Self.sharedKeys.get() }

    var authSection: String {
        """
        auth:
          issuers:
            - issuer: \(iss)
              tenant: a
              audience: \(aud)
              keys: [\(keys.dir)/rsa.pub.pem, { file: \(keys.dir)/p256.pub.pem }, \(keys.dir)/p384.pub.pem]
        """
    }

    /// A signed token; times are seconds relative to now.
    func token(
        scope: String, patient: String? = nil, purpose: String? = nil, alg: String = "ES256", exp: Int = 300, nbf: Int? = nil,
        aud: String? = nil, iss: String? = nil, sub: String = "nurse-7"
    ) throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        var claims = [
            #""iss":"\#(iss ?? self.iss)""#, #""aud":"\#(aud ?? self.aud)""#, #""sub":"\#(sub)""#, #""exp":\#(now + exp)"#,
            #""scope":"\#(scope)""#,
        ]
        if let patient { claims.append(#""patient":"\#(patient)""#) }
        if let purpose { claims.append(#""purpose_of_use":"\#(purpose)""#) }
        if let nbf { claims.append(#""nbf":\#(now + nbf)"#) }
        let key = ["RS256": "rsa", "ES256": "p256", "ES384": "p384"][alg] ?? "p256"
        return try keys.token("{" + claims.joined(separator: ",") + "}", alg: alg, key: key)
    }

    func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    func diagnostics(_ reply: TestClient.Reply) -> String {
        ((reply.json["issue"] as? [[String: Any]])?.first?["diagnostics"] as? String) ?? ""
    }

    func ids(_ reply: TestClient.Reply) -> [String] {
        ((reply.json["entry"] as? [[String: Any]]) ?? []).compactMap { ($0["resource"] as? [String: Any])?["id"] as? String }.sorted()
    }

    @Test func originAPIEnforcesTokensScopesAndThePatientCompartment() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let config = try pair.writeOrigin(extra: authSection)
        let origin = try await InProcessNode(configPath: config)
        let base = "https://127.0.0.1:\(origin.port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)

        // Certificates keep full access within their tenant.
        for (path, body) in [
            ("Patient/p1", #"{"resourceType":"Patient"}"#), ("Patient/p2", #"{"resourceType":"Patient"}"#),
            ("Observation/o1", #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"}}"#),
            ("Observation/o2", #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p2"}}"#),
        ] {
            #expect(try await cert.put("\(base)/\(path)", body).status == 201)
        }

        // No credentials: 401 with a Bearer challenge and an OperationOutcome.
        let anonymous = try await app.get("\(base)/Observation/o1")
        #expect(anonymous.status == 401 && anonymous.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(anonymous.json["resourceType"] as? String == "OperationOutcome")

        // A valid token reads; the capability statement needs no scope.
        let user = try token(scope: "openid user/*.rs", alg: "RS256")
        #expect(try await app.get("\(base)/Observation/o2", headers: bearer(user)).status == 200)
        #expect(try await app.get("\(base)/metadata", headers: bearer(try token(scope: "openid"))).status == 200)

        // A valid token without the scope: 403 naming the permission.
        let patientOnly = try await app.get("\(base)/Observation/o1", headers: bearer(try token(scope: "user/Patient.r", sub: "clerk-1")))
        #expect(patientOnly.status == 403 && diagnostics(patientOnly).contains("'r' on Observation"), "\(patientOnly.text)")
        let update = try await app.put(
            "\(base)/Observation/o1", #"{"resourceType":"Observation","status":"amended"}"#, headers: bearer(user))
        #expect(update.status == 403 && diagnostics(update).contains("'u' on Observation"))

        // v1 scopes: read is r + s.
        let v1 = try token(scope: "user/Observation.read", alg: "ES384")
        #expect(try await app.get("\(base)/Observation/o1", headers: bearer(v1)).status == 200)
        #expect(ids(try await app.get("\(base)/Observation", headers: bearer(v1))) == ["o1", "o2"])

        // patient/ scopes reach the launch patient's compartment only; others' and missing resources alike are 403.
        let p1 = try token(scope: "launch/patient patient/Observation.crs patient/Patient.r", patient: "p1")
        #expect(try await app.get("\(base)/Observation/o1", headers: bearer(p1)).status == 200)
        let foreign = try await app.get("\(base)/Observation/o2", headers: bearer(p1))
        #expect(foreign.status == 403 && foreign.json["resourceType"] as? String == "OperationOutcome")
        #expect(try await app.get("\(base)/Observation/nothing-here", headers: bearer(p1)).status == 403)
        #expect(try await app.get("\(base)/Patient/p1", headers: bearer(p1)).status == 200)
        #expect(try await app.get("\(base)/Patient/p2", headers: bearer(p1)).status == 403)
        #expect(ids(try await app.get("\(base)/Observation", headers: bearer(p1))) == ["o1"])
        #expect(ids(try await app.get("\(base)/Observation?subject=Patient/p2", headers: bearer(p1))) == [])
        let own = #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"}}"#
        let others = #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p2"}}"#
        #expect(try await app.post("\(base)/Observation", own, headers: bearer(p1)).status == 201)
        #expect(try await app.post("\(base)/Observation", others, headers: bearer(p1)).status == 403)
        // c without u: a PUT may create, not replace.
        #expect(try await app.put("\(base)/Observation/o3", own, headers: bearer(p1)).status == 201)
        #expect(try await app.put("\(base)/Observation/o3", own, headers: bearer(p1)).status == 403)
        let noPatient = try await app.get("\(base)/Observation/o1", headers: bearer(try token(scope: "patient/Observation.rs")))
        #expect(noPatient.status == 403 && diagnostics(noPatient).contains("'patient' claim"))

        // Invalid tokens: 401 saying why, never echoing the token.
        let good = try token(scope: "user/*.rs")
        let parts = good.split(separator: ".").map(String.init)
        let rsaPayload = try token(scope: "user/*.cruds", alg: "RS256").split(separator: ".").map(String.init)[1]
        let invalid: [(String, String)] = [
            ("expired", try token(scope: "user/*.rs", exp: -300)),
            ("not valid yet", try token(scope: "user/*.rs", nbf: 600)),
            ("audience", try token(scope: "user/*.rs", aud: "https://other.example/fhir")),
            ("issuer", try token(scope: "user/*.rs", iss: "https://idp.b.example")),
            ("signature", parts[0] + "." + rsaPayload + "." + parts[2]),
            ("algorithm", Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + parts[1] + "."),
            ("algorithm", Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + parts[1] + "." + parts[2]),
        ]
        for (reason, bad) in invalid {
            let reply = try await app.get("\(base)/Observation/o1", headers: bearer(bad))
            #expect(reply.status == 401 && diagnostics(reply).contains(reason), "\(reason): \(reply.status) \(reply.text)")
            #expect(reply.header("WWW-Authenticate")?.contains("invalid_token") == true)
            #expect(!reply.text.contains(parts[1]) && !reply.text.contains("nurse-7"))
        }

        // The tenant header still applies; break-glass is for treatment only.
        #expect(try await app.get("\(base)/Observation/o1", headers: bearer(good) + [("X-EdgeCache-Tenant", "b")]).status == 403)
        let payment = try token(scope: "user/*.rs", purpose: "HPAYMT", sub: "billing-2")
        let refused = try await app.get("\(base)/Observation/o1", headers: bearer(payment) + [("X-EdgeCache-Break-Glass", "audit")])
        #expect(refused.status == 403 && diagnostics(refused) == "break-glass is allowed for treatment only")
        let emergency = try token(scope: "user/*.rs", purpose: "ETREAT", sub: "doctor-3")
        let glass = try await app.get(
            "\(base)/Observation/o2", headers: bearer(emergency) + [("X-EdgeCache-Break-Glass", "  unconscious patient  ")])
        #expect(glass.status == 200)

        // The peer listener stays mTLS only: no certificate, no connection.
        await #expect(throws: (any Error).self) {
            try await app.get("https://127.0.0.1:\(origin.port("peer"))/fhir/metadata", headers: bearer(good))
        }
        await cert.shutdown()
        await app.shutdown()
        await origin.stop()

        // Refusals are in the audit trail, with the actor, purpose and break-glass reason.
        let export = try runCLI(["audit", "export", "--config", config, "--format", "fhir"])
        let events = export.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        func who(_ event: [String: Any]) -> String? {
            ((((event["agent"] as? [[String: Any]])?.first?["who"] as? [String: Any])?["identifier"] as? [String: Any])?["value"]
                as? String)
        }
        let clerk = events.first { who($0) == "client:a:clerk-1" }
        #expect(
            clerk?["outcome"] as? String == "4" && (clerk?["outcomeDesc"] as? String)?.hasPrefix("HTTP 403") == true,
            "\(export.output.suffix(3000))")
        #expect(events.contains { who($0) == "anonymous" && ($0["outcomeDesc"] as? String)?.hasPrefix("HTTP 401") == true })
        let billing = events.first { who($0) == "client:a:billing-2" }
        let billingPurpose = (billing?["purposeOfEvent"] as? [[String: Any]])?.first?["coding"] as? [[String: Any]]
        #expect(billingPurpose?.first?["code"] as? String == "HPAYMT")
        let doctor = events.first { who($0) == "client:a:doctor-3" }
        let doctorPurposes = doctor?["purposeOfEvent"] as? [[String: Any]] ?? []
        #expect(doctorPurposes.count == 2 && doctorPurposes.last?["text"] as? String == "unconscious patient", "\(doctorPurposes)")
        #expect(try runCLI(["audit", "verify", "--config", config]).status == 0)
    }

    @Test func edgeAPITakesTokensOfItsTenant() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: authSection))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let base = "https://127.0.0.1:\(edge.port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)
        #expect(try await cert.put("\(base)/Patient/e1", #"{"resourceType":"Patient"}"#).status == 201)
        let obs = #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/e1"}}"#
        #expect(try await cert.put("\(base)/Observation/eo1", obs).status == 201)
        #expect(try await cert.put("\(base)/Observation/eo2", obs.replacingOccurrences(of: "e1", with: "e2")).status == 201)

        #expect(try await app.get("\(base)/Observation/eo1").status == 401)
        let p = try token(scope: "patient/Observation.rs", patient: "e1")
        #expect(try await app.get("\(base)/Observation/eo1", headers: bearer(p)).status == 200)
        #expect(try await app.get("\(base)/Observation/eo2", headers: bearer(p)).status == 403)
        #expect(ids(try await app.get("\(base)/Observation", headers: bearer(p))) == ["eo1"])
        let user = try token(scope: "user/Observation.rs", alg: "ES384")
        #expect(ids(try await app.get("\(base)/Observation", headers: bearer(user))) == ["eo1", "eo2"])
        await cert.shutdown()
        await app.shutdown()
        await edge.stop()
        await origin.stop()
    }

    @Test func aRememberedTokenStopsWorkingWhenItExpires() async throws {
        // Verified tokens are remembered (the signature is not checked again on every read),
        // but each use is checked against exp and nbf on the node's clock.
        let clock = ManualClock(start: Int64(Date().timeIntervalSince1970 * 1000))
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(
            configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: authSection), clock: clock)
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let base = "https://127.0.0.1:\(edge.port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)
        #expect(try await cert.put("\(base)/Patient/t1", #"{"resourceType":"Patient"}"#).status == 201)
        let user = try token(scope: "user/Patient.rs", exp: 120)
        for _ in 0..<3 { #expect(try await app.get("\(base)/Patient/t1", headers: bearer(user)).status == 200) }
        let other = try token(scope: "user/Observation.rs", exp: 120)
        #expect(try await app.get("\(base)/Patient/t1", headers: bearer(other)).status == 403)
        clock.advance(seconds: 170)  // within the 60 s leeway
        #expect(try await app.get("\(base)/Patient/t1", headers: bearer(user)).status == 200)
        clock.advance(seconds: 20)
        let expired = try await app.get("\(base)/Patient/t1", headers: bearer(user))
        #expect(expired.status == 401 && diagnostics(expired).contains("expired"), "\(expired.text)")
        let future = try token(scope: "user/Patient.rs", exp: 900, nbf: 200)
        #expect(try await app.get("\(base)/Patient/t1", headers: bearer(future)).status == 200)
        clock.advance(seconds: -300)
        #expect(try await app.get("\(base)/Patient/t1", headers: bearer(future)).status == 401)
        await cert.shutdown()
        await app.shutdown()
        await edge.stop()
        await origin.stop()
    }

    @Test func aReloadReplacesIssuerKeysAndForgetsRememberedTokens() async throws {
        // The issuer's key file is replaced (the identity provider rotated its signing key) and
        // the node reloads: tokens signed by the old key stop working at once, even one that
        // was remembered as verified, and tokens signed by the new key work.
        let keyFile = dir.path + "/idp.pub.pem"
        try FileManager.default.copyItem(atPath: "\(keys.dir)/p256.pub.pem", toPath: keyFile)
        let section = """
            auth:
              issuers:
                - issuer: \(iss)
                  tenant: a
                  audience: \(aud)
                  keys: [\(keyFile)]
            """
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: section))
        let base = "https://127.0.0.1:\(origin.port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)
        #expect(try await cert.put("\(base)/Patient/k1", #"{"resourceType":"Patient"}"#).status == 201)
        let old = try token(scope: "user/Patient.rs", alg: "ES256")
        let new = try token(scope: "user/Patient.rs", alg: "ES384")
        for _ in 0..<2 { #expect(try await app.get("\(base)/Patient/k1", headers: bearer(old)).status == 200) }
        #expect(try await app.get("\(base)/Patient/k1", headers: bearer(new)).status == 401)

        try FileManager.default.removeItem(atPath: keyFile)
        try FileManager.default.copyItem(atPath: "\(keys.dir)/p384.pub.pem", toPath: keyFile)
        #expect(origin.runtime.reloader.reload() == nil)
        let refused = try await app.get("\(base)/Patient/k1", headers: bearer(old))
        #expect(refused.status == 401, "\(refused.text)")
        #expect(try await app.get("\(base)/Patient/k1", headers: bearer(new)).status == 200)

        // An unreadable key file is refused, and the keys in force stay as they were.
        try "not a key".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let reason = origin.runtime.reloader.reload()
        #expect(reason?.contains("idp.pub.pem") == true, "\(reason ?? "accepted")")
        #expect(try await app.get("\(base)/Patient/k1", headers: bearer(new)).status == 200)
        #expect(origin.runtime.reloader.snapshot.succeeded == 1 && origin.runtime.reloader.snapshot.failed == 1)
        await cert.shutdown()
        await app.shutdown()
        await origin.stop()
    }

    @Test func certificatesAreStillCheckedWhenTokensAreOn() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: authSection + "\n  client_certificates: false"))
        let base = "https://127.0.0.1:\(origin.port("api"))/fhir"
        // A certificate from another CA still fails the handshake, token or not.
        let foreign = try TestClient(pki: SharedPKI.foreign, identity: "client-a", caFile: SharedPKI.main.ca)
        await #expect(throws: (any Error).self) {
            try await foreign.get("\(base)/metadata", headers: bearer(try token(scope: "user/*.rs")))
        }
        await foreign.shutdown()
        // With client_certificates: false a valid certificate alone is not enough.
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let refused = try await cert.get("\(base)/Patient/x")
        #expect(refused.status == 401 && diagnostics(refused).contains("bearer token"))
        #expect(try await cert.get("\(base)/Patient/x", headers: bearer(try token(scope: "user/Patient.r"))).status == 404)
        // A scope-less write is refused before its body is looked at.
        let write = try await cert.post("\(base)/Patient", "not json", headers: bearer(try token(scope: "user/Patient.rs")))
        #expect(write.status == 403 && diagnostics(write).contains("'c' on Patient"), "\(write.text)")
        await cert.shutdown()
        await origin.stop()
    }
}
