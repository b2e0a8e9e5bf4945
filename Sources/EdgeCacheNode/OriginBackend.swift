import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore

/// The origin's FHIR backend: the system of record itself.
public struct OriginBackend: FHIRBackend {
    let store: any OriginStore

    public init(store: any OriginStore) {
        self.store = store
    }

    public func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        guard let resource = try await store.read(tenant: caller.tenant, type: type, id: id) else {
            throw FHIRError.notFound("\(type)/\(id) is not known")
        }
        return ResourceAnswer(resource: resource)
    }

    public func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        guard let resource = try await store.vread(tenant: caller.tenant, type: type, id: id, version: version) else {
            throw FHIRError.notFound("\(type)/\(id) has no version \(version)")
        }
        return ResourceAnswer(resource: resource)
    }

    public func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
        let versions = try await store.history(tenant: caller.tenant, type: type, id: id)
        guard !versions.isEmpty else { throw FHIRError.notFound("\(type)/\(id) is not known") }
        return ListAnswer(page: SearchPage(resources: versions, total: versions.count, hasMore: false))
    }

    public func search(_ caller: FHIRCaller, type: String, query: SearchQuery, rawQuery: String?) async throws -> ListAnswer {
        ListAnswer(page: try await store.search(tenant: caller.tenant, type: type, query: query))
    }

    public func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        let result = try await store.write(tenant: caller.tenant, operation)
        if case .delete = operation { return WriteAnswer(status: 204, resource: result.version) }
        return WriteAnswer(status: result.created ? 201 : 200, resource: result.version)
    }
}
