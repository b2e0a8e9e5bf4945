/// What one Consent resource forbids, read from FHIR R4 Consent.
///
/// EdgeCache follows an opt-out model: access is permitted unless a Consent says otherwise.
/// A Consent blocks access to its patient's compartment when
/// - its status is `inactive`, `rejected` or `entered-in-error` (consent revoked): for the
///   purposes its top-level `permit` provision named, or for every purpose if it named none;
/// - it is `active` with a `deny` provision (top-level or nested): for that provision's
///   purposes (every purpose if none), and only for the actors it names (anyone if none).
/// `draft` and `proposed` consents change nothing.
package struct ConsentRule: Sendable, Equatable {
    /// One thing the consent forbids.
    package struct Clause: Sendable, Equatable {
        /// PurposeOfUse codes blocked; nil means every purpose.
        package var purposes: Set<String>?
        /// Actor references (`Practitioner/x`, …) the clause applies to; empty means anyone.
        package var actors: Set<String>

        package init(purposes: Set<String>?, actors: Set<String> = []) {
            self.purposes = purposes
            self.actors = actors
        }
    }

    package var consentID: String
    package var version: Int64
    package var patient: String
    package var clauses: [Clause]
    /// Why, for OperationOutcomes and the audit trail (`status inactive`, `deny provision`).
    package var reason: String

    /// Whether it blocks every purpose for everyone (then the edge also purges the entries).
    package var blocksEverything: Bool { clauses.contains { $0.purposes == nil && $0.actors.isEmpty } }

    /// The clause that blocks `purpose` for `actor`, if any.
    package func blocks(purpose: String, actor: String?) -> Bool {
        clauses.contains { clause in
            (clause.purposes?.contains(purpose) ?? true) && (clause.actors.isEmpty || actor.map(clause.actors.contains) == true)
        }
    }

    /// The rule a Consent version sets; nil when it blocks nothing (or is not a Consent of a patient).
    package static func from(id: String, version: Int64, object: JSONObject) -> ConsentRule? {
        guard let ref = object["patient"]?.objectValue?["reference"]?.stringValue,
            let normalized = SearchTerms.normalizeReference(ref), normalized.hasPrefix("Patient/")
        else { return nil }
        let patient = String(normalized.dropFirst("Patient/".count))
        let status = object["status"]?.stringValue ?? ""
        let provision = object["provision"]?.objectValue
        var clauses: [Clause] = []
        var reason: String
        switch status {
        case "inactive", "rejected", "entered-in-error":
            reason = "status \(status)"
            let purposes = provision.flatMap { $0["type"]?.stringValue != "deny" ? codes($0["purpose"]) : nil }
            clauses.append(Clause(purposes: purposes.flatMap { $0.isEmpty ? nil : $0 }))
        case "active":
            reason = "deny provision"
            if let provision { collectDenies(provision, into: &clauses) }
        default:
            return nil
        }
        guard !clauses.isEmpty else { return nil }
        return ConsentRule(consentID: id, version: version, patient: patient, clauses: clauses, reason: reason)
    }

    private static func collectDenies(_ provision: JSONObject, into clauses: inout [Clause]) {
        if provision["type"]?.stringValue == "deny" {
            let purposes = codes(provision["purpose"])
            var actors: Set<String> = []
            for actor in provision["actor"]?.arrayValue ?? [] {
                if let ref = actor.objectValue?["reference"]?.objectValue?["reference"]?.stringValue,
                    let normalized = SearchTerms.normalizeReference(ref)
                {
                    actors.insert(normalized)
                }
            }
            clauses.append(Clause(purposes: purposes.isEmpty ? nil : purposes, actors: actors))
        }
        for nested in provision["provision"]?.arrayValue ?? [] {
            if let o = nested.objectValue { collectDenies(o, into: &clauses) }
        }
    }

    private static func codes(_ value: JSONValue?) -> Set<String> {
        Set((value?.arrayValue ?? []).compactMap { $0.objectValue?["code"]?.stringValue })
    }
}

/// The consent rules of one tenant, by patient: a pure state machine fed with Consent versions
/// (from the stream, its priority lane, or the origin's own writes), oldest-first or not.
package struct ConsentBook: Sendable {
    private var versions: [String: Int64] = [:]
    private var rules: [String: ConsentRule] = [:]
    private var byPatient: [String: Set<String>] = [:]

    package init() {}

    /// No patient has a rule (reads can skip the check).
    package var isEmpty: Bool { byPatient.isEmpty }
    /// Patients with at least one rule.
    package var patientCount: Int { byPatient.count }

    /// What applying a Consent version did.
    package struct Update: Sendable, Equatable {
        /// The version was newer than any seen for this Consent.
        package var isNew: Bool
        /// What is blocked changed.
        package var changed: Bool
        /// The Consent's rule now (nil: it blocks nothing).
        package var rule: ConsentRule?

        package init(isNew: Bool, changed: Bool, rule: ConsentRule?) {
            self.isNew = isNew
            self.changed = changed
            self.rule = rule
        }
    }

    /// Applies a Consent version (nil object for a deletion). Older versions than one already
    /// seen are ignored.
    @discardableResult
    package mutating func apply(id: String, version: Int64, object: JSONObject?) -> Update {
        if let seen = versions[id], seen >= version { return Update(isNew: false, changed: false, rule: rules[id]) }
        versions[id] = version
        let rule = object.flatMap { ConsentRule.from(id: id, version: version, object: $0) }
        let previous = rules[id]
        if let previous {
            byPatient[previous.patient]?.remove(id)
            if byPatient[previous.patient]?.isEmpty == true { byPatient[previous.patient] = nil }
        }
        rules[id] = rule
        if let rule { byPatient[rule.patient, default: []].insert(id) }
        let changed = previous?.clauses != rule?.clauses || previous?.patient != rule?.patient
        return Update(isNew: true, changed: changed, rule: rule)
    }

    /// The rule that blocks access to any of `patients` for `purpose` by `actor`, if one does.
    package func blocking(patients: Set<String>, purpose: String, actor: String?) -> ConsentRule? {
        for patient in patients {
            for id in byPatient[patient] ?? [] {
                if let rule = rules[id], rule.blocks(purpose: purpose, actor: actor) { return rule }
            }
        }
        return nil
    }

    /// Whether a patient's entries should not be kept at all (a rule blocks everything).
    package func isFullyBlocked(_ patient: String) -> Bool {
        (byPatient[patient] ?? []).contains { rules[$0]?.blocksEverything == true }
    }
}
