import EdgeCacheCore
import EdgeCacheStore
import Synchronization

/// The consent rules a node enforces, per tenant (thread-safe wrapper of ``ConsentBook``).
///
/// An edge fills it at start from its cached Consent resources and keeps it current from the
/// stream's priority lane; the origin loads a tenant's consents on first use (``loader``) and
/// applies its own Consent writes as they commit.
package final class ConsentRegistry: Sendable {
    private let books = Mutex<[String: ConsentBook]>([:])
    private let loaded = Mutex<Set<String>>([])
    /// Loads every current Consent of a tenant (origin); nil when the registry is filled by hand.
    let loader: (@Sendable (String) async throws -> [ResourceVersion])?

    package init(loader: (@Sendable (String) async throws -> [ResourceVersion])? = nil) {
        self.loader = loader
    }

    /// Applies a Consent version (a tombstone removes its rule).
    @discardableResult
    package func apply(tenant: String, _ resource: ResourceVersion) -> ConsentBook.Update {
        guard resource.type == "Consent" else { return ConsentBook.Update(isNew: false, changed: false, rule: nil) }
        var object: JSONObject?
        if !resource.deleted, case .object(let o)? = try? JSONParser.parse(resource.json) { object = o }
        return books.withLock { $0[tenant, default: ConsentBook()].apply(id: resource.id, version: resource.version, object: object) }
    }

    /// Marks a tenant as loaded (for registries filled by hand, e.g. at an edge's start).
    package func markLoaded(_ tenant: String) { _ = loaded.withLock { $0.insert(tenant) } }

    /// Loads a tenant's consents once (origin). Throws if they cannot be read: access is then
    /// refused rather than granted without knowing the consents.
    package func ensureLoaded(_ tenant: String) async throws {
        guard let loader, !loaded.withLock({ $0.contains(tenant) }) else { return }
        for resource in try await loader(tenant) { apply(tenant: tenant, resource) }
        markLoaded(tenant)
    }

    package func isEmpty(tenant: String) -> Bool { books.withLock { $0[tenant]?.isEmpty ?? true } }

    package func blocking(tenant: String, patients: Set<String>, purpose: String, actor: String?) -> ConsentRule? {
        guard !patients.isEmpty else { return nil }
        return books.withLock { $0[tenant]?.blocking(patients: patients, purpose: purpose, actor: actor) }
    }

    package func isFullyBlocked(tenant: String, patient: String) -> Bool {
        books.withLock { $0[tenant]?.isFullyBlocked(patient) ?? false }
    }

    package func patientCount(tenant: String) -> Int { books.withLock { $0[tenant]?.patientCount ?? 0 } }
}
