import EdgeCacheCore
import Testing

@Suite struct ConsentRulesTests {
    func consent(_ json: String) throws -> JSONObject {
        guard case .object(let o) = try JSONParser.parse(Array(json.utf8)) else { throw CoreTestFailure() }
        return o
    }

    @Test(arguments: ["inactive", "rejected", "entered-in-error"])
    func revokedStatusBlocksEveryPurpose(status: String) throws {
        let rule = try #require(
            ConsentRule.from(
                id: "c1", version: 2,
                object: try consent(
                    #"{"resourceType":"Consent","status":"\#(status)","patient":{"reference":"Patient/p1"}}"#)))
        #expect(rule.patient == "p1" && rule.blocksEverything && rule.blocks(purpose: "TREAT", actor: nil))
        #expect(rule.reason == "status \(status)")
    }

    @Test func revokedPermitBlocksOnlyItsPurposes() throws {
        let rule = try #require(
            ConsentRule.from(
                id: "c1", version: 2,
                object: try consent(
                    #"{"resourceType":"Consent","status":"inactive","patient":{"reference":"Patient/p1"},"provision":{"type":"permit","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HRESCH"}]}}"#
                )))
        #expect(rule.blocks(purpose: "HRESCH", actor: nil))
        #expect(!rule.blocks(purpose: "TREAT", actor: nil))
        #expect(!rule.blocksEverything)
    }

    @Test func activeConsentWithoutDenyBlocksNothing() throws {
        #expect(
            ConsentRule.from(
                id: "c1", version: 1,
                object: try consent(
                    #"{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"},"provision":{"type":"permit"}}"#))
                == nil)
        #expect(
            ConsentRule.from(
                id: "c1", version: 1,
                object: try consent(
                    #"{"resourceType":"Consent","status":"draft","patient":{"reference":"Patient/p1"}}"#)) == nil)
    }

    @Test func nestedDenyForPurposeAndActor() throws {
        let rule = try #require(
            ConsentRule.from(
                id: "c1", version: 1,
                object: try consent(
                    #"{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"},"provision":{"type":"permit","provision":[{"type":"deny","purpose":[{"code":"HMARKT"}]},{"type":"deny","actor":[{"reference":{"reference":"Practitioner/dr-x"}}]}]}}"#
                )))
        #expect(rule.blocks(purpose: "HMARKT", actor: "Practitioner/dr-y"))
        #expect(!rule.blocks(purpose: "TREAT", actor: "Practitioner/dr-y"))
        #expect(rule.blocks(purpose: "TREAT", actor: "Practitioner/dr-x"))
        #expect(!rule.blocksEverything)
    }

    @Test func bookKeepsNewestVersionAndUnblocks() throws {
        var book = ConsentBook()
        let revoked = try consent(#"{"resourceType":"Consent","status":"inactive","patient":{"reference":"Patient/p1"}}"#)
        let active = try consent(#"{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"}}"#)
        #expect(book.isEmpty)
        #expect(book.apply(id: "c1", version: 2, object: revoked).changed)
        #expect(book.blocking(patients: ["p1"], purpose: "TREAT", actor: nil)?.consentID == "c1")
        #expect(book.blocking(patients: ["p2"], purpose: "TREAT", actor: nil) == nil)
        #expect(book.isFullyBlocked("p1"))
        // An older version arriving late (main stream after the lane) changes nothing.
        #expect(!book.apply(id: "c1", version: 1, object: active).isNew)
        #expect(book.blocking(patients: ["p1"], purpose: "TREAT", actor: nil) != nil)
        // Re-activated: unblocked.
        #expect(book.apply(id: "c1", version: 3, object: active).changed)
        #expect(book.blocking(patients: ["p1"], purpose: "TREAT", actor: nil) == nil && book.isEmpty)
        // Deleted consent: its rule goes.
        book.apply(id: "c2", version: 1, object: revoked)
        book.apply(id: "c2", version: 2, object: nil)
        #expect(book.isEmpty)
    }

    @Test func compartmentOfAResource() throws {
        #expect(PatientCompartment.patientIDs(type: "Patient", id: "p1", object: JSONObject()) == ["p1"])
        let obs = try consent(#"{"resourceType":"Observation","subject":{"reference":"https://x/fhir/Patient/p2/_history/3"}}"#)
        #expect(PatientCompartment.patientIDs(type: "Observation", id: "o1", object: obs) == ["p2"])
        let group = try consent(#"{"resourceType":"Observation","subject":{"reference":"Group/g1"}}"#)
        #expect(PatientCompartment.patientIDs(type: "Observation", id: "o1", object: group).isEmpty)
    }
}
struct CoreTestFailure: Error {}
