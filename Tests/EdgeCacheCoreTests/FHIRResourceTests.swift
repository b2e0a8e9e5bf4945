import EdgeCacheCore
import Testing

@Suite struct FHIRResourceTests {
    func parse(_ body: String, type: String = "Patient", id: String? = nil) throws(FHIRError) -> JSONObject {
        try FHIRResource.parse(body: Array(body.utf8), type: type, urlID: id)
    }

    @Test func acceptsAValidResourceAndDropsTheBodyIDOnCreate() throws {
        let object = try parse(#"{"resourceType":"Patient","id":"ignored","active":true}"#)
        #expect(object["id"] == nil)
        #expect(object["active"] == .bool(true))
    }

    @Test func rejectsMalformedJSON() {
        #expect(throws: FHIRError.self) { try parse("{\"resourceType\":") }
    }

    @Test func rejectsDeepNesting() {
        let deep = #"{"resourceType":"Patient","extension":"# + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}"
        #expect { try parse(deep) } throws: { ($0 as? FHIRError)?.diagnostics.contains("deeper than 64") == true }
    }

    @Test func rejectsResourceTypeMismatch() {
        #expect { try parse(#"{"resourceType":"Observation"}"#) } throws: { ($0 as? FHIRError)?.status == 400 }
    }

    @Test func rejectsBodyIDThatDiffersFromURL() {
        #expect { try parse(#"{"resourceType":"Patient","id":"a"}"#, id: "b") } throws: { ($0 as? FHIRError)?.status == 400 }
    }

    @Test func rejectsNonObjectsAndMissingType() {
        #expect(throws: FHIRError.self) { try parse("[1]") }
        #expect(throws: FHIRError.self) { try parse(#"{"id":"a"}"#) }
        #expect(throws: FHIRError.self) { try parse(#"{"resourceType":"Patient","meta":1}"#) }
    }

    @Test(arguments: ["a", "A-1.b", String(repeating: "x", count: 64)])
    func validIDs(_ id: String) { #expect(ResourceID.isValid(id)) }

    @Test(arguments: ["", "a b", "a/b", "ä", String(repeating: "x", count: 65), "a_b", "a%20"])
    func invalidIDs(_ id: String) { #expect(!ResourceID.isValid(id)) }

    @Test func stampSetsIDAndMetaFirst() throws {
        let object = try parse(#"{"active":true,"resourceType":"Patient","meta":{"tag":[]}}"#)
        let json = String(decoding: FHIRResource.stamp(object, id: "p1", version: 3, lastUpdated: 0), as: UTF8.self)
        #expect(
            json
                == #"{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"1970-01-01T00:00:00.000Z","tag":[]},"active":true}"#
        )
    }

    @Test func searchTermsCoverIdentifiersAndPatientReferences() throws {
        let object = try parse(
            #"{"resourceType":"Observation","identifier":[{"system":"urn:s","value":"v1"}],"subject":{"reference":"https://x.org/fhir/Patient/p9"}}"#,
            type: "Observation")
        let terms = Set(SearchTerms.extract(from: object, type: "Observation"))
        #expect(terms.isSuperset(of: ["identifier|urn:s|v1", "identifier||v1", "patient|Patient/p9", "subject|Patient/p9"]))
        #expect(terms.contains("identifier|urn:s|"))
    }
}
