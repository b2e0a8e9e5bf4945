import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore

/// The origin's FHIR backend: the system of record itself.
package struct OriginBackend: FHIRBackend {
    let store: any OriginStore
    let inFlight = InFlightKeys()
    /// The consent rules the origin enforces, kept current with its own Consent writes.
    let consent: ConsentRegistry?

    package init(store: any OriginStore, consent: ConsentRegistry? = nil) {
        self.store = store
        self.consent = consent
    }

    /// Every current Consent of a tenant (loads the consent rules).
    package static func consents(_ store: any OriginStore, tenant: String) async throws -> [ResourceVersion] {
        var all: [ResourceVersion] = []
        var query = SearchQuery()
        query.count = 1000
        while true {
            let page = try await store.search(tenant: tenant, type: "Consent", query: query)
            all += page.resources
            guard page.hasMore else { return all }
            query.offset += query.count
        }
    }

    package func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        guard let resource = try await store.read(tenant: caller.tenant, type: type, id: id) else {
            throw FHIRError.notFound("\(type)/\(id) is not known")
        }
        return ResourceAnswer(resource: resource)
    }

    package func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        guard let resource = try await store.vread(tenant: caller.tenant, type: type, id: id, version: version) else {
            throw FHIRError.notFound("\(type)/\(id) has no version \(version)")
        }
        return ResourceAnswer(resource: resource)
    }

    package func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
        let versions = try await store.history(tenant: caller.tenant, type: type, id: id)
        guard !versions.isEmpty else { throw FHIRError.notFound("\(type)/\(id) is not known") }
        return ListAnswer(page: SearchPage(resources: versions, total: versions.count, hasMore: false))
    }

    package func search(_ caller: FHIRCaller, type: String, query: SearchQuery) async throws -> ListAnswer {
        ListAnswer(page: try await store.search(tenant: caller.tenant, type: type, query: query))
    }

    /// Writes with IETF Idempotency-Key semantics: the key's record is committed with the
    /// effect; a repeat gets the stored response, a different request under the key 422, and a
    /// repeat while the first is still running (after a short wait) 409.
    package func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        var claim: IdempotencyClaim?
        var inFlightKey: String?
        if let key = idempotencyKey {
            guard !key.isEmpty, key.utf8.count <= 255 else { throw FHIRError.invalid("Idempotency-Key must be 1 to 255 characters") }
            claim = IdempotencyClaim(key: key, fingerprint: operation.fingerprintBytes)
            let slot = "\(caller.tenant)\u{0}\(key)"
            guard await inFlight.claim(slot, waiting: .seconds(2)) else {
                throw FHIRError(status: 409, code: "conflict", "A request with this Idempotency-Key is still being processed")
            }
            inFlightKey = slot
        }
        defer { if let inFlightKey { inFlight.release(inFlightKey) } }
        let result = try await store.write(tenant: caller.tenant, operation, idempotency: claim)
        if let consent, let version = result.version, version.type == "Consent" { consent.apply(tenant: caller.tenant, version) }
        if case .delete = operation { return WriteAnswer(status: 204, resource: result.version, replayed: result.replayed) }
        return WriteAnswer(status: result.created ? 201 : 200, resource: result.version, replayed: result.replayed)
    }

    static func operation(for item: ReplayItem) -> Result<WriteOperation, FHIRError> {
        switch item.method {
        case .put:
            do {
                let object = try FHIRResource.parse(body: item.resource, type: item.type, urlID: item.id)
                return .success(.update(type: item.type, id: item.id, resource: object, ifMatch: item.ifMatch))
            } catch {
                return .failure(error)
            }
        case .delete:
            return .success(.delete(type: item.type, id: item.id, ifMatch: item.ifMatch))
        }
    }

    /// Applies a replayed batch from an edge in one transaction, each write with its key.
    package func writeBatch(tenant: String, _ items: [ReplayItem]) async throws -> [ReplayResult] {
        var writes: [BatchWrite?] = []
        var results: [ReplayResult?] = []
        for item in items {
            switch Self.operation(for: item) {
            case .success(let operation):
                writes.append(
                    BatchWrite(operation: operation, claim: IdempotencyClaim(key: item.key, fingerprint: operation.fingerprintBytes)))
                results.append(nil)
            case .failure(let error):
                writes.append(nil)
                results.append(
                    ReplayResult(key: item.key, status: error.status, version: nil, code: error.code, diagnostics: error.diagnostics))
            }
        }
        let committed = try await store.writeBatch(tenant: tenant, writes.compactMap { $0 })
        var iterator = committed.makeIterator()
        return zip(items, results).map { item, early in
            if let early { return early }
            switch iterator.next()! {
            case .success(let result):
                if let consent, let version = result.version, version.type == "Consent" { consent.apply(tenant: tenant, version) }
                let status = item.method == .delete ? 204 : (result.created ? 201 : 200)
                return ReplayResult(key: item.key, status: status, version: result.version)
            case .failure(let error):
                return ReplayResult(key: item.key, status: error.status, version: nil, code: error.code, diagnostics: error.diagnostics)
            }
        }
    }
}
