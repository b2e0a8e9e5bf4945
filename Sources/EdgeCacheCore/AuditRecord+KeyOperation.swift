import Foundation

extension AuditRecord {
    /// Actions of key operations: a data key rotation, a KEK rotation, a tenant shredded.
    package enum KeyAction: String, Sendable, CaseIterable {
        case rotate = "key-rotate"
        case rotateKEK = "key-rotate-kek"
        case shred = "key-shred"
    }

    /// A record of a key operation (no key material: only which tenant, which new data key
    /// version, and the outcome). `resource` is `DataKey/<tenant>`.
    ///
    /// ```swift
    /// let record = AuditRecord.keyOperation(.rotate, tenant: "st-mary", keyVersion: 3, node: "origin-1", time: now)
    /// ```
    package static func keyOperation(
        _ action: KeyAction, tenant: String, keyVersion: Int64? = nil, outcome: Int = 200, actor: String = "operator:cli",
        node: String, time: Int64, detail: String? = nil
    ) -> AuditRecord {
        AuditRecord(
            time: time, action: action.rawValue, outcome: outcome, actor: actor, tenant: tenant, resource: "DataKey/\(tenant)",
            version: keyVersion, source: detail ?? "cli", policyVersion: "-", node: node, requestID: UUID().uuidString.lowercased())
    }
}
