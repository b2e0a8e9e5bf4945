import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Logging
import Synchronization

/// The edge's consent enforcement state: the rules (``ConsentRegistry``), purging of blocked
/// patients' entries, the audit of both, and how fast revocations arrive.
package final class ConsentGuard: Sendable {
    package let registry: ConsentRegistry
    let tenant: String
    let store: EdgeStore
    let audit: AuditLog
    let clock: any WallClock
    let logger: Logger
    private let stats = Mutex(ConsentStats())

    package init(tenant: String, store: EdgeStore, audit: AuditLog, clock: any WallClock, logger: Logger) {
        self.registry = ConsentRegistry(loader: { _ in try await store.consent.cachedConsents() })
        self.tenant = tenant
        self.store = store
        self.audit = audit
        self.clock = clock
        self.logger = logger
    }

    /// After a bootstrap replaced the cache: takes in the snapshot's consents.
    func reloaded() async {
        guard let consents = try? await store.consent.cachedConsents() else { return }
        await consentsApplied(consents.map { Change(lsn: 0, resource: $0) }, lane: false)
    }

    /// Whether a resource may be kept in the cache (not while its patient's consent blocks
    /// everything: a blocked read must not bring back what a purge removed).
    package func mayStore(_ resource: ResourceVersion) -> Bool {
        guard !resource.deleted, resource.type != "Consent", !registry.isEmpty(tenant: tenant) else { return true }
        return !PatientCompartment.patientIDs(type: resource.type, id: resource.id, json: resource.json).contains {
            registry.isFullyBlocked(tenant: tenant, patient: $0)
        }
    }

    /// Takes in Consent versions (from the priority lane or the main stream) and purges the
    /// compartments of patients whose consent now blocks everything.
    func consentsApplied(_ changes: [Change], lane: Bool) async {
        try? await registry.ensureLoaded(tenant)
        for change in changes where change.resource.type == "Consent" {
            let update = registry.apply(tenant: tenant, change.resource)
            guard update.isNew else { continue }
            let now = clock.nowMillis()
            guard update.changed else { continue }
            let consent = "Consent/\(change.resource.id)"
            if let rule = update.rule {
                let mainLSN = store.stream.counters.checkpoint
                stats.withLock {
                    $0.blocks += 1
                    $0.lastBlock = (lsn: change.lsn, mainLSN: mainLSN)
                    // Origin commit → rule in force here (both clocks are this machine's in tests and drills).
                    $0.sample(max(0, now - change.resource.lastUpdated))
                }
                audit.event(
                    "consent-block", tenant: tenant, resource: "Patient/\(rule.patient)", version: change.resource.version,
                    detail:
                        "\(consent) \(rule.reason); purposes=\(rule.clauses.map { $0.purposes?.sorted().joined(separator: ",") ?? "all" }.joined(separator: "|")); lsn=\(change.lsn)"
                )
                if rule.blocksEverything { await purge(patient: rule.patient, because: consent) }
            } else {
                audit.event("consent-unblock", tenant: tenant, resource: consent, version: change.resource.version)
            }
        }
    }

    /// After a main-stream batch: entries of fully blocked patients are not kept.
    func mainApplied(_ changes: [Change]) async {
        await consentsApplied(changes, lane: false)
        guard !registry.isEmpty(tenant: tenant) else { return }
        var patients: Set<String> = []
        for change in changes where change.resource.type != "Consent" && !change.resource.deleted {
            for patient in PatientCompartment.patientIDs(type: change.resource.type, id: change.resource.id, json: change.resource.json)
            where registry.isFullyBlocked(tenant: tenant, patient: patient) {
                patients.insert(patient)
            }
        }
        for patient in patients { await purge(patient: patient, because: "consent") }
    }

    private func purge(patient: String, because consent: String) async {
        do {
            let removed = try await store.consent.purgeCompartment(patient: patient)
            stats.withLock { $0.purged += removed }
            if removed > 0 {
                audit.event("purge", tenant: tenant, resource: "Patient/\(patient)", detail: "\(consent); entries=\(removed)")
            }
        } catch {
            // Reads stay blocked by the rule; the entries are purged on the next change.
            logger.error("purging a blocked patient's entries failed", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// Figures for /status.
    package var snapshot: ConsentStats { stats.withLock { $0 } }
}

/// Counters and propagation samples (origin commit → edge rule in force, milliseconds) of the
/// consent lane; the last 10,000 samples are kept.
package struct ConsentStats: Sendable {
    package var blocks = 0
    package var purged = 0
    /// The LSN of the last blocking consent change, and the main stream's checkpoint when it
    /// took effect (lower: the consent outran the ordinary changes queued ahead of it).
    package var lastBlock: (lsn: Int64, mainLSN: Int64)?
    package private(set) var applied = 0
    private var samples: [Int64] = []
    /// Upper bounds (ms) of the propagation histogram (`/metrics`).
    package static let bucketBounds: [Int64] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
    /// Samples at or below each bound (not cumulative), then above the last; all since start.
    package private(set) var buckets = [Int](repeating: 0, count: ConsentStats.bucketBounds.count + 1)
    package private(set) var sumMilliseconds: Int64 = 0

    mutating func sample(_ ms: Int64) {
        applied += 1
        buckets[Self.bucketBounds.firstIndex { ms <= $0 } ?? Self.bucketBounds.count] += 1
        sumMilliseconds += ms
        if samples.count >= 10_000 { samples.removeFirst(samples.count - 9_999) }
        samples.append(ms)
    }

    /// The q-quantile (0...1) of the kept samples.
    package func quantile(_ q: Double) -> Int64? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
    }

    package var maximum: Int64? { samples.max() }
    package var sampleCount: Int { samples.count }
}
