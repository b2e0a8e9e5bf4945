/// The data classes of DESIGN.md; every resource type belongs to one.
package enum DataClass: String, Sendable, CaseIterable, Codable {
    case consent
    case clinicalCritical = "clinical-critical"
    case clinical
    case operational
    case commercial
    case predictive
    case reference
}

/// How an edge keeps a class: every change (`full`) or only entries already cached (`resident`).
package enum ReplicationMode: String, Sendable, Codable, CaseIterable {
    case full
    case resident
}

/// How a queued write whose base version is no longer current at the origin is settled.
package enum ConflictRule: String, Sendable, Codable, CaseIterable {
    /// Set aside in the review queue with both versions (the default for anything clinical).
    case reject
    /// The edge's write is applied over the origin's version.
    case lastWriterWins = "last-writer-wins"
}

/// The consistency a class promises its readers.
///
/// Every class is served from the cache while its entry is younger than the TTL (or the stream
/// is live), revalidated with the origin beyond it, and served stale only within the
/// stale-if-error limit when the origin cannot be reached. `read-after-write` adds that an
/// edge's own writes are visible at once (pending versions); `strong` classes (consent) are also
/// carried on the stream's priority lane.
package enum Consistency: String, Sendable, Codable, CaseIterable {
    case strong
    case readAfterWrite = "read-after-write"
    case boundedStaleness = "bounded-staleness"
    case versionBound = "version-bound"
    case eventual
}

/// The rules of one data class (one entry of the policy registry).
package struct ClassPolicy: Sendable, Equatable {
    package var dataClass: DataClass
    /// Who owns the class's rules (a team or role; informative).
    package var owner: String = "clinical-informatics"
    /// Seconds an entry is fresh without a live stream confirming it; beyond, it is revalidated.
    package var ttlSeconds: Int
    package var consistency: Consistency = .boundedStaleness
    /// Longest staleness (seconds) at which a cached entry may still be served when the origin is
    /// unreachable; nil means no limit.
    package var staleIfErrorSeconds: Int?
    package var replication: ReplicationMode
    /// Lower is evicted first when the cache is over its byte budget; classes replicated in
    /// full are never evicted.
    package var evictionPriority: Int = 50
    package var conflictRule: ConflictRule = .reject
    /// The audit class recorded with every access (e.g. `phi`, `phi-sensitive`, `reference`).
    package var auditClass: String = "phi"
    /// Days entries are kept at the edge without being read (nil: no limit).
    package var retentionDays: Int?
    // Made only in this module (the defaults and the policy file), with the memberwise initializer.
}

/// The default policy table (DESIGN.md, "Data classes"): what a node uses until a policy file
/// or the origin's published registry says otherwise.
package enum DefaultPolicy {
    package static let version = "builtin-1"

    static let typeClasses: [String: DataClass] = [
        "Consent": .consent,
        "AllergyIntolerance": .clinicalCritical, "MedicationRequest": .clinicalCritical,
        "MedicationStatement": .clinicalCritical, "Condition": .clinicalCritical, "Encounter": .clinicalCritical,
        "Procedure": .clinicalCritical,
        "Observation": .clinical, "DiagnosticReport": .clinical, "Immunization": .clinical, "CarePlan": .clinical,
        "Patient": .operational, "Appointment": .operational, "Location": .operational,
        "Practitioner": .operational, "PractitionerRole": .operational,
        "Basic": .commercial,
        "RiskAssessment": .predictive,
        "CodeSystem": .reference, "ValueSet": .reference, "ConceptMap": .reference, "Medication": .reference,
        "Organization": .reference,
    ]

    /// The class of a resource type; types the table does not name are `clinical`.
    package static func dataClass(of type: String) -> DataClass { typeClasses[type] ?? .clinical }

    /// The default rules of a class.
    package static func policy(for dataClass: DataClass) -> ClassPolicy {
        switch dataClass {
        case .consent:
            ClassPolicy(
                dataClass: .consent, owner: "privacy-office", ttlSeconds: 60, consistency: .strong, staleIfErrorSeconds: nil,
                replication: .full, evictionPriority: 100, auditClass: "phi-consent")
        case .clinicalCritical:
            ClassPolicy(
                dataClass: .clinicalCritical, ttlSeconds: 300, consistency: .readAfterWrite, staleIfErrorSeconds: 12 * 3600,
                replication: .full, evictionPriority: 90, auditClass: "phi-sensitive")
        case .clinical:
            ClassPolicy(dataClass: .clinical, ttlSeconds: 600, staleIfErrorSeconds: nil, replication: .full, evictionPriority: 80)
        case .operational:
            ClassPolicy(
                dataClass: .operational, owner: "hospital-it", ttlSeconds: 900, staleIfErrorSeconds: nil, replication: .full,
                evictionPriority: 60, conflictRule: .lastWriterWins)
        case .commercial:
            ClassPolicy(
                dataClass: .commercial, owner: "crm", ttlSeconds: 3600, staleIfErrorSeconds: nil, replication: .resident,
                evictionPriority: 10, conflictRule: .lastWriterWins, auditClass: "business", retentionDays: 30)
        case .predictive:
            ClassPolicy(
                dataClass: .predictive, owner: "data-science", ttlSeconds: 300, consistency: .versionBound,
                staleIfErrorSeconds: 300, replication: .resident, evictionPriority: 20, conflictRule: .lastWriterWins,
                retentionDays: 7)
        case .reference:
            ClassPolicy(
                dataClass: .reference, owner: "terminology", ttlSeconds: 86400, consistency: .eventual, staleIfErrorSeconds: nil,
                replication: .full, evictionPriority: 40, conflictRule: .lastWriterWins, auditClass: "reference")
        }
    }

    /// The rules for a resource type.
    package static func policy(forType type: String) -> ClassPolicy { policy(for: dataClass(of: type)) }

    /// The whole default registry.
    package static var registry: PolicyRegistry {
        PolicyRegistry(
            version: version, classes: Dictionary(uniqueKeysWithValues: DataClass.allCases.map { ($0, policy(for: $0)) }),
            typeClasses: typeClasses)
    }
}
