import EdgeCacheCore
import Testing

@Suite struct SMARTScopesTests {
    @Test func parsesV2Scopes() throws {
        let scope = try #require(SMARTScope("patient/Observation.rs"))
        #expect(scope.context == .patient && scope.resourceType == "Observation" && scope.permissions == [.read, .search])
        #expect(SMARTScope("user/*.cruds")?.permissions == .all)
        #expect(SMARTScope("system/Patient.c")?.permissions == .create)
        #expect(SMARTScope("user/*.cruds")?.description == "user/*.cruds")
    }

    @Test func mapsV1Permissions() {
        #expect(SMARTScope("patient/Observation.read")?.permissions == [.read, .search])
        #expect(SMARTScope("user/Patient.write")?.permissions == [.create, .update, .delete])
        #expect(SMARTScope("user/*.*")?.permissions == .all)
    }

    @Test(arguments: [
        "openid", "launch", "fhirUser", "offline_access", "patient/Observation.sr", "patient/Observation.rr", "patient/Observation.",
        "patient/.rs", "group/Observation.rs", "patient/Observation.x", "patient/Observation.rs?category=laboratory",
        "patient/Obs-ervation.rs", "patient/Observation", "user/*.writ",
    ])
    func rejectsWhatIsNotAClinicalScope(text: String) {
        #expect(SMARTScope(text) == nil)
    }

    @Test func decidesAccessPerInteractionAndType() {
        let grant = SMARTGrant(scopeClaim: "openid launch patient/Observation.rs user/Patient.r  patient/*.c")
        #expect(grant.scopes.count == 3)
        #expect(grant.access(FHIRInteraction.read.permission, on: "Observation") == .patientCompartment)
        #expect(grant.access(FHIRInteraction.search.permission, on: "Observation") == .patientCompartment)
        #expect(grant.access(FHIRInteraction.update.permission, on: "Observation") == .denied)
        #expect(grant.access(FHIRInteraction.read.permission, on: "Patient") == .any)
        #expect(grant.access(FHIRInteraction.search.permission, on: "Patient") == .denied)
        #expect(grant.access(FHIRInteraction.create.permission, on: "Encounter") == .patientCompartment)
        #expect(grant.access(FHIRInteraction.delete.permission, on: "Encounter") == .denied)
        #expect(grant.hasPatientScopes)
        // user/ wins over patient/ for the same permission.
        #expect(SMARTGrant(scopeClaim: "patient/*.rs user/Observation.r").access(.read, on: "Observation") == .any)
        #expect(SMARTGrant(scopeClaim: "").access(.read, on: "Observation") == .denied)
    }

    @Test func interactionsNeedTheirLetters() {
        #expect(FHIRInteraction.vread.permission == .read && FHIRInteraction.history.permission == .read)
        #expect(FHIRInteraction.create.permission.description == "c")
        #expect(FHIRInteraction.delete.permission.description == "d")
        #expect(SMARTPermissions.all.description == "cruds")
    }

    @Test func base64URLRoundTripsAndRefusesNonCanonicalText() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(($0 * 37 + 11) & 0xFF) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.encode(Array("{\"alg\":\"ES256\"}".utf8)) == "eyJhbGciOiJFUzI1NiJ9")
        #expect(Base64URL.decode("eyJhbGciOiJFUzI1NiJ9=") == nil)  // padding
        #expect(Base64URL.decode("ab+/") == nil)  // base64, not base64url
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("aQ") == [0x69] && Base64URL.decode("aQ=") == nil)
        #expect(Base64URL.decode("AB") == nil)  // leftover bits are not zero
    }
}
