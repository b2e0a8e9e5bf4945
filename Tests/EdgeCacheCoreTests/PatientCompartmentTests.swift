import EdgeCacheCore
import Testing

/// Compartment membership follows the R4 Patient CompartmentDefinition's paths, all of them.
@Suite struct PatientCompartmentTests {
    func object(_ json: String) throws -> JSONObject {
        guard case .object(let o) = try JSONParser.parse(Array(json.utf8)) else { throw CoreTestFailure() }
        return o
    }

    @Test func theR4PathsOfATypeDecideMembership() throws {
        #expect(PatientCompartment.r4Paths["Observation"] == [["subject"], ["performer"]])
        #expect(PatientCompartment.r4Paths["Condition"] == [["subject"], ["asserter"]])
        #expect(PatientCompartment.r4Paths["Organization"] == nil)
        // Every path, arrays flattened: performer names a second patient.
        let shared = try object(
            #"{"resourceType":"Observation","subject":{"reference":"Patient/a"},"performer":[{"reference":"Practitioner/d"},{"reference":"Patient/b"}]}"#
        )
        #expect(PatientCompartment.patientIDs(type: "Observation", id: nil, object: shared) == ["a", "b"])
        // A non-standard top-level `patient` is no compartment path of an Observation.
        let smuggled = try object(
            #"{"resourceType":"Observation","subject":{"reference":"Patient/b"},"patient":{"reference":"Patient/a"},"beneficiary":{"reference":"Patient/a"}}"#
        )
        #expect(PatientCompartment.patientIDs(type: "Observation", id: nil, object: smuggled) == ["b"])
        // Nested paths (Group.member.entity, Patient.link.other).
        let group = try object(
            #"{"resourceType":"Group","member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/c"}}]}"#)
        #expect(PatientCompartment.patientIDs(type: "Group", id: "g", object: group) == ["a", "c"])
        let linked = try object(#"{"resourceType":"Patient","link":[{"other":{"reference":"Patient/b"},"type":"seealso"}]}"#)
        #expect(PatientCompartment.patientIDs(type: "Patient", id: "a", object: linked) == ["a", "b"])
    }

    @Test func aPatientTokenWritesOnlyWhatNamesItsPatientAlone() throws {
        func writable(_ type: String, _ json: String, id: String? = nil) throws -> Bool {
            PatientCompartment.isWritable(type: type, id: id, object: try object(json), by: "a")
        }
        #expect(try writable("Observation", #"{"subject":{"reference":"Patient/a"}}"#))
        #expect(
            try writable(
                "Observation",
                #"{"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/a"},{"reference":"Practitioner/d"}]}"#))
        #expect(try writable("Patient", #"{"name":[{"family":"A"}]}"#, id: "a"))
        // Another patient anywhere in the paths, or nobody at all: refused.
        #expect(try !writable("Observation", #"{"subject":{"reference":"Patient/b"},"patient":{"reference":"Patient/a"}}"#))
        #expect(try !writable("Observation", #"{"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}]}"#))
        #expect(try !writable("Observation", #"{"status":"final","patient":{"reference":"Patient/a"}}"#))
        #expect(try !writable("Patient", #"{"link":[{"other":{"reference":"Patient/b"}}]}"#, id: "a"))
        // A patient reference that cannot be checked names nobody the token could be.
        #expect(
            try !writable(
                "Observation", #"{"subject":{"reference":"Patient/a"},"performer":[{"type":"Patient","identifier":{"value":"MRN-2"}}]}"#))
        #expect(try !writable("Observation", #"{"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b c"}]}"#))
        #expect(try !writable("Organization", #"{"name":"x"}"#, id: "a"))
    }
}
