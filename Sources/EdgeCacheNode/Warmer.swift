import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import NIOHTTP1

/// Loads the compartments of a census list into an edge's cache before a planned downtime
/// (`edgecache warm`): each patient and the resources of the compartment types that name it,
/// fetched from the origin over the edge's own mTLS identity and stored sealed.
///
/// Fully replicated classes are normally there already; warming matters most for `resident`
/// classes (fetched on demand otherwise) and for an edge that has not caught up yet. Patients
/// whose consent blocks everything are skipped.
package struct Warmer: Sendable {
    let store: EdgeStore
    let origin: OriginClient
    let policies: PolicyHolder
    let tenant: String

    /// Types searched by `patient=` for each patient (plus every resident type of the policy).
    package static let compartmentTypes = [
        "AllergyIntolerance", "Appointment", "Basic", "CarePlan", "CareTeam", "Condition", "Consent", "DiagnosticReport",
        "DocumentReference", "Encounter", "FamilyMemberHistory", "Flag", "Goal", "Immunization", "MedicationRequest",
        "MedicationStatement", "Observation", "Procedure", "RiskAssessment", "ServiceRequest",
    ]

    package init(store: EdgeStore, origin: OriginClient, policies: PolicyHolder, tenant: String) {
        self.store = store
        self.origin = origin
        self.policies = policies
        self.tenant = tenant
    }

    package struct Result: Sendable {
        package var patients = 0
        package var resources = 0
        package var skipped: [String] = []
        package var failed: [String] = []
    }

    /// Warms `patients`; `progress(done, total, resources)` is called after each patient.
    package func warm(patients: [String], progress: @Sendable (Int, Int, Int) -> Void = { _, _, _ in }) async -> Result {
        let consent = ConsentRegistry(loader: { _ in try await store.consent.cachedConsents() })
        try? await consent.ensureLoaded(tenant)
        let registry = policies.registry
        let types = Array(Set(Self.compartmentTypes + registry.typeClasses.keys.filter { registry.isResident($0) })).sorted()
        var result = Result()
        for (index, patient) in patients.enumerated() {
            defer { progress(index + 1, patients.count, result.resources) }
            guard ResourceID.isValid(patient[...]) else {
                result.failed.append(patient)
                continue
            }
            if consent.isFullyBlocked(tenant: tenant, patient: patient) {
                result.skipped.append(patient)
                continue
            }
            do {
                result.resources += try await warm(patient: patient, types: types)
                result.patients += 1
            } catch {
                result.failed.append(patient)
            }
        }
        return result
    }

    private func warm(patient: String, types: [String]) async throws -> Int {
        var stored = 0
        let reply = try await origin.send(method: .GET, path: "/fhir/Patient/\(patient)")
        if reply.status == 200 {
            if try await store.entries.put(try OriginReplies.resource(reply, type: "Patient")) { stored += 1 }
        } else if reply.status != 404 && reply.status != 410 {
            throw OriginReplies.error(reply)
        }
        for type in types {
            var offset = 0
            while true {
                let page = try await origin.send(method: .GET, path: "/fhir/\(type)?patient=\(patient)&_count=500&_offset=\(offset)")
                guard page.status == 200 else { throw OriginReplies.error(page) }
                let results = try OriginReplies.searchset(page, type: type)
                for resource in results.resources where try await store.entries.put(resource) { stored += 1 }
                guard results.hasMore, !results.resources.isEmpty else { break }
                offset += results.resources.count
            }
        }
        return stored
    }
}
