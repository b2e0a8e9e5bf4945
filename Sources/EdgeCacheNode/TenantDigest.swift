import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheHTTP
import Foundation

/// A digest of what a node holds for a tenant, so an edge and its origin can be compared after
/// a drill: SHA-256 over the sorted lines `Type/id/version` of every current (not deleted)
/// resource of the classes an edge replicates in full, leaving out the compartments of patients
/// whose consent blocks everything (an edge purges those). Equal digests: converged.
package enum TenantDigest {
    package struct Value: Sendable {
        package var hex: String
        package var count: Int
    }

    /// - Parameter page: the resources of a type from an offset (at most 1,000), and whether more follow.
    package static func compute(
        policy: PolicyRegistry, consent: ConsentRegistry?, tenant: String,
        page: @Sendable (String, Int) async throws -> SearchPage
    ) async throws -> Value {
        try await consent?.ensureLoaded(tenant)
        var lines: [String] = []
        for type in ResourceTypes.all.sorted() where !policy.isResident(type) {
            var offset = 0
            while true {
                let result = try await page(type, offset)
                for r in result.resources where !r.deleted {
                    if let consent, r.type != "Consent" {
                        let patients = PatientCompartment.patientIDs(type: r.type, id: r.id, json: r.json)
                        if patients.contains(where: { consent.isFullyBlocked(tenant: tenant, patient: $0) }) { continue }
                    }
                    lines.append("\(r.type)/\(r.id)/\(r.version)")
                }
                guard result.hasMore, !result.resources.isEmpty else { break }
                offset += result.resources.count
            }
        }
        lines.sort()
        let hash = SHA256Digest.hash(Array(lines.joined(separator: "\n").utf8))
        return Value(hex: Hex.encode(hash), count: lines.count)
    }
}
