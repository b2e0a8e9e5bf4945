import EdgeCacheNode
import Foundation
import Testing

/// A `patient/` token writes only into its own patient's chart, at the edge and at the origin.
extension BearerAccessTests {
    /// An origin, and with `role` "edge" a live edge of tenant a; the node of `role` accepts tokens.
    func startNodes(tokensAt role: String) async throws -> (origin: InProcessNode, edge: InProcessNode?) {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: role == "origin" ? authSection : ""))
        guard role == "edge" else { return (origin, nil) }
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: authSection))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        return (origin, edge)
    }

    @Test(arguments: ["origin", "edge"])
    func aPatientTokenCannotWriteIntoAnotherPatientsChart(at role: String) async throws {
        let (origin, edge) = try await startNodes(tokensAt: role)
        let base = "https://127.0.0.1:\((edge ?? origin).port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)
        for (path, body) in [
            ("Patient/wa", #"{"resourceType":"Patient"}"#), ("Patient/wb", #"{"resourceType":"Patient"}"#),
            ("Observation/owa", #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/wa"}}"#),
        ] {
            #expect(try await cert.put("\(base)/\(path)", body).status == 201)
        }
        let a = bearer(try token(scope: "launch/patient patient/Observation.cruds", patient: "wa"))
        func observation(_ fields: String) -> String { #"{"resourceType":"Observation","status":"final",\#(fields)}"# }

        // B's chart, with a non-standard top-level reference to A (the old rule took any of them).
        let attacks = [
            #""subject":{"reference":"Patient/wb"},"patient":{"reference":"Patient/wa"}"#,
            #""subject":{"reference":"Patient/wb"},"beneficiary":{"reference":"Patient/wa"}"#,
            // A's chart by subject, B's by performer (an R4 compartment path of Observation).
            #""subject":{"reference":"Patient/wa"},"performer":[{"reference":"Patient/wb"}]"#,
        ]
        for fields in attacks {
            let created = try await app.post("\(base)/Observation", observation(fields), headers: a)
            #expect(
                created.status == 403 && created.json["resourceType"] as? String == "OperationOutcome", "\(created.status) \(created.text)")
            let updated = try await app.put("\(base)/Observation/owa", observation(#""id":"owa","# + fields), headers: a)
            #expect(updated.status == 403, "\(updated.status) \(updated.text)")
            #expect(try await app.put("\(base)/Observation/onew", observation(#""id":"onew","# + fields), headers: a).status == 403)
        }
        // Nothing landed in B's chart; A's own writes still work.
        let chartB = try await cert.get("\(base)/Observation?subject=Patient/wb")
        #expect(ids(chartB) == [], "\(chartB.text)")
        let own = observation(#""subject":{"reference":"Patient/wa"},"performer":[{"reference":"Patient/wa"}]"#)
        #expect(try await app.post("\(base)/Observation", own, headers: a).status == 201)
        #expect(try await app.get("\(base)/Observation/owa", headers: a).status == 200)
        await cert.shutdown()
        await app.shutdown()
        await edge?.stop()
        await origin.stop()
    }

    @Test(arguments: ["origin", "edge"])
    func aPatientTokensSearchSaysNothingAboutOtherPatients(at role: String) async throws {
        let (origin, edge) = try await startNodes(tokensAt: role)
        let base = "https://127.0.0.1:\((edge ?? origin).port("api"))/fhir"
        let cert = try TestClient(pki: SharedPKI.main, identity: "client-a")
        let app = try TestClient(pki: SharedPKI.main, identity: nil)
        func observation(_ patient: String) -> String {
            #"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/\#(patient)"}}"#
        }
        for (path, body) in [
            ("Patient/xa", #"{"resourceType":"Patient","identifier":[{"value":"MRN-1"}]}"#),
            ("Patient/xb", #"{"resourceType":"Patient","identifier":[{"value":"MRN-2"}]}"#),
            ("Observation/xa1", observation("xa")), ("Observation/xb1", observation("xb")), ("Observation/xb2", observation("xb")),
        ] {
            #expect(try await cert.put("\(base)/\(path)", body).status == 201)
        }
        let a = bearer(try token(scope: "launch/patient patient/Patient.rs patient/Observation.rs", patient: "xa"))
        func shape(_ query: String) async throws -> String {
            let reply = try await app.get("\(base)/\(query)", headers: a)
            #expect(reply.status == 200, "\(query): \(reply.text)")
            let links = ((reply.json["link"] as? [[String: Any]]) ?? []).map { $0["relation"] as? String ?? "" }
            return "total=\(reply.json["total"].map { "\($0)" } ?? "-") links=\(links) ids=\(ids(reply))"
        }
        // Whether MRN-2 exists (another patient's) changes nothing in the answer.
        let existing = try await shape("Patient?identifier=MRN-1,MRN-2&_count=1")
        let missing = try await shape("Patient?identifier=MRN-1,MRN-9&_count=1")
        #expect(existing == missing && existing == "total=- links=[\"self\"] ids=[\"xa\"]", "\(existing) vs \(missing)")
        #expect(try await shape("Patient?identifier=MRN-2&_count=1") == "total=- links=[\"self\"] ids=[]")
        // Paging counts the compartment only: one Observation, however many others exist.
        #expect(try await shape("Observation?_count=1") == "total=- links=[\"self\"] ids=[\"xa1\"]")
        #expect(try await shape("Observation?_count=1&_offset=1") == "total=- links=[\"self\", \"previous\"] ids=[]")
        #expect(try await shape("Observation?_count=0") == "total=- links=[\"self\"] ids=[]")
        // A compartment search (`Patient/[id]/[type]`): the token's own patient only; another's is empty.
        #expect(try await shape("Patient/xa/Observation") == "total=- links=[\"self\"] ids=[\"xa1\"]")
        #expect(try await shape("Patient/xb/Observation") == "total=- links=[\"self\"] ids=[]")
        // A certificate (no compartment) still pages over everything, and searches any patient's compartment.
        #expect(ids(try await cert.get("\(base)/Observation?_count=2")).count == 2)
        #expect(ids(try await cert.get("\(base)/Patient/xb/Observation?_sort=_id")) == ["xb1", "xb2"])
        await cert.shutdown()
        await app.shutdown()
        await edge?.stop()
        await origin.stop()
    }
}
