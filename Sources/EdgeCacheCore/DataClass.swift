/// The data classes of DESIGN.md and their default policy.
public enum DataClass: String, Sendable, CaseIterable, Codable {
    case consent
    case clinicalCritical = "clinical-critical"
    case clinical
    case operational
    case commercial
    case predictive
    case reference
}

/// How an edge keeps a class: every change (`full`) or only entries already cached (`resident`).
public enum ReplicationMode: String, Sendable, Codable {
    case full
    case resident
}

/// How a queued write whose base version is no longer current at the origin is settled.
public enum ConflictRule: String, Sendable, Codable {
    /// Set aside in the review queue with both versions (the default for anything clinical).
    case reject
    /// The edge's write is applied over the origin's version.
    case lastWriterWins = "last-writer-wins"
}

/// The per-class rules an edge applies to reads and queued writes (subset of the policy registry).
public struct ClassPolicy: Sendable, Equatable {
    public var dataClass: DataClass
    /// Seconds an entry is fresh without a live stream confirming it.
    public var ttlSeconds: Int
    /// Longest staleness (seconds) at which a cached entry may still be served when the origin is
    /// unreachable; nil means no limit.
    public var staleIfErrorSeconds: Int?
    public var replication: ReplicationMode
    public var conflictRule: ConflictRule = .reject
}

/// The default policy table (DESIGN.md, "Data classes").
public enum DefaultPolicy {
    public static let version = "builtin-1"

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
    public static func dataClass(of type: String) -> DataClass { typeClasses[type] ?? .clinical }

    /// The default rules of a class.
    public static func policy(for dataClass: DataClass) -> ClassPolicy {
        switch dataClass {
        case .consent: ClassPolicy(dataClass: .consent, ttlSeconds: 60, staleIfErrorSeconds: nil, replication: .full)
        case .clinicalCritical:
            ClassPolicy(dataClass: .clinicalCritical, ttlSeconds: 300, staleIfErrorSeconds: 12 * 3600, replication: .full)
        case .clinical: ClassPolicy(dataClass: .clinical, ttlSeconds: 600, staleIfErrorSeconds: nil, replication: .full)
        case .operational:
            ClassPolicy(
                dataClass: .operational, ttlSeconds: 900, staleIfErrorSeconds: nil, replication: .full, conflictRule: .lastWriterWins)
        case .commercial:
            ClassPolicy(
                dataClass: .commercial, ttlSeconds: 3600, staleIfErrorSeconds: nil, replication: .resident,
                conflictRule: .lastWriterWins)
        case .predictive:
            ClassPolicy(
                dataClass: .predictive, ttlSeconds: 300, staleIfErrorSeconds: 300, replication: .resident,
                conflictRule: .lastWriterWins)
        case .reference:
            ClassPolicy(
                dataClass: .reference, ttlSeconds: 86400, staleIfErrorSeconds: nil, replication: .full,
                conflictRule: .lastWriterWins)
        }
    }

    /// The rules for a resource type.
    public static func policy(forType type: String) -> ClassPolicy { policy(for: dataClass(of: type)) }
}
