import EdgeCacheCore
import EdgeCacheStore

/// Consent enforcement, shared by both roles: a resource in the compartment of a patient whose
/// consent blocks the caller's purpose is refused (403 OperationOutcome saying why), or left
/// out of a search; a treatment request stating a break-glass reason may read it, and the
/// answer says so (`EdgeCache-Consent: break-glass`) for the audit trail.
extension FHIRResponder {
    static let consentHeader = "EdgeCache-Consent"

    /// Whether emergency access applies to this caller.
    static func breakGlass(_ caller: FHIRCaller) -> Bool {
        caller.breakGlassReason != nil && ["TREAT", "ETREAT"].contains(caller.identity.purpose)
    }

    func blockingRule(_ resource: ResourceVersion, caller: FHIRCaller) -> ConsentRule? {
        // Edges enforce consent themselves (and need what they fetch to answer break-glass).
        guard let consent, caller.identity.role != .edge, resource.type != "Consent", !resource.deleted,
            !consent.isEmpty(tenant: caller.tenant)
        else { return nil }
        let patients = PatientCompartment.patientIDs(type: resource.type, id: resource.id, json: resource.json)
        return consent.blocking(
            tenant: caller.tenant, patients: patients, purpose: caller.identity.purpose, actor: caller.identity.subject)
    }

    /// Checks one resource about to be returned: throws 403 when consent blocks it, and notes
    /// in `facts` when break-glass let it through.
    func consentCheck(_ resource: ResourceVersion, caller: FHIRCaller, facts: inout FHIRFacts) async throws {
        guard let consent else { return }
        try await loadConsents(consent, caller: caller)
        guard let rule = blockingRule(resource, caller: caller) else { return }
        if Self.breakGlass(caller) {
            facts.consent = .breakGlass(consentID: rule.consentID)
            return
        }
        facts.consent = .blocked(consentID: rule.consentID)
        var error = FHIRError.forbidden(
            "Access to this record is blocked by Consent/\(rule.consentID) of Patient/\(rule.patient) (\(rule.reason)) for purpose \(caller.identity.purpose); for treatment in an emergency, state a reason in X-EdgeCache-Break-Glass"
        )
        error.headers = [(Self.consentHeader, facts.consent!.headerValue)]
        throw error
    }

    /// Leaves blocked resources out of a page (unless break-glass applies), noting in `facts`
    /// how many were left out or let through.
    func consentFilter(_ page: SearchPage, caller: FHIRCaller, facts: inout FHIRFacts) async throws -> SearchPage {
        guard let consent else { return page }
        try await loadConsents(consent, caller: caller)
        guard !consent.isEmpty(tenant: caller.tenant) else { return page }
        var kept: [ResourceVersion] = []
        var keptIncluded: [ResourceVersion] = []
        var blocked = 0
        var blockedIncluded = 0
        for resource in page.resources {
            if blockingRule(resource, caller: caller) == nil { kept.append(resource) } else { blocked += 1 }
        }
        for resource in page.included {
            if blockingRule(resource, caller: caller) == nil { keptIncluded.append(resource) } else { blockedIncluded += 1 }
        }
        guard blocked + blockedIncluded > 0 else { return page }
        if Self.breakGlass(caller) {
            facts.consent = .breakGlassEntries(blocked + blockedIncluded)
            return page
        }
        var filtered = page
        filtered.resources = kept
        filtered.included = keptIncluded
        filtered.total = page.total.map { max(0, $0 - blocked) }
        facts.consent = .filtered(entries: blocked + blockedIncluded)
        return filtered
    }

    private func loadConsents(_ consent: ConsentRegistry, caller: FHIRCaller) async throws {
        do {
            try await consent.ensureLoaded(caller.tenant)
        } catch {
            throw FHIRError.unavailable("Consents could not be read, so access cannot be decided", retryAfter: 5)
        }
    }
}
