import EdgeCacheCore
import NIOSSL

/// Who is calling, from the verified client certificate or a verified bearer token.
///
/// Certificates name their holder with URI subject alternative names:
/// `urn:edgecache:tenant:<tenant>`, `urn:edgecache:role:<edge|client|origin>` and, for nodes,
/// `urn:edgecache:node:<node-id>` (see docs/OPERATIONS.md, "Certificates").
package struct ClientIdentity: Sendable, Equatable {
    package enum Role: String, Sendable {
        case edge, client, origin
        /// A role value this version does not know (treated as no role).
        case unknown
    }

    package var tenant: String?
    package var role: Role?
    package var node: String?
    package var commonName: String?
    /// Who acts (a token's `sub`, or the node id of a certificate), for the audit trail.
    package var subject: String?
    /// The stated purpose of use (HL7 v3 PurposeOfUse code, e.g. `TREAT`); nil means treatment.
    package var purposeOfUse: String?
    /// The patient a `patient/` token is limited to (SMART launch context).
    package var patientContext: String?
    /// The SMART scopes of a bearer token; nil for a certificate (full access within its tenant).
    package var grant: SMARTGrant?

    package init(
        tenant: String?, role: Role?, node: String? = nil, commonName: String? = nil, subject: String? = nil,
        purposeOfUse: String? = nil, patientContext: String? = nil, grant: SMARTGrant? = nil
    ) {
        self.tenant = tenant
        self.role = role
        self.node = node
        self.commonName = commonName
        self.subject = subject
        self.purposeOfUse = purposeOfUse
        self.patientContext = patientContext
        self.grant = grant
    }

    /// The purpose of use that applies (treatment unless stated).
    package var purpose: String { purposeOfUse ?? "TREAT" }

    /// Reads the EdgeCache URIs of a certificate.
    package init(certificate: NIOSSLCertificate) {
        var tenant: String?
        var role: Role?
        var node: String?
        var conflicting = false
        func set<T: Equatable>(_ slot: inout T?, _ value: T?) {
            if let existing = slot, existing != value { conflicting = true }
            slot = value
        }
        for uri in CertificateNames(certificate).uris {
            let prefix = "urn:edgecache:"
            guard uri.hasPrefix(prefix) else { continue }
            let rest = uri.dropFirst(prefix.count)
            guard let colon = rest.firstIndex(of: ":") else { continue }
            let value = String(rest[rest.index(after: colon)...])
            switch rest[..<colon] {
            case "tenant": set(&tenant, value)
            case "role": set(&role, Role(rawValue: value) ?? .unknown)
            case "node": set(&node, value)
            default: continue
            }
        }
        // A certificate naming two tenants or two roles names none: it is refused (403). So is
        // one whose tenant is empty or malformed (`urn:edgecache:tenant:`): it names nobody.
        if conflicting || role == .unknown {
            self.init(tenant: nil, role: nil, node: nil, commonName: nil)
        } else if let tenant, !TenantName.isValid(tenant) {
            self.init(tenant: nil, role: role, node: node, commonName: nil, subject: node)
        } else {
            self.init(tenant: tenant, role: role, node: node, commonName: nil, subject: node)
        }
    }
}
