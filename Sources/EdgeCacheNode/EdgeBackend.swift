import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// The edge's FHIR backend: the sealed cache in front of the origin.
///
/// Reads: hit → served locally with `Cache-Status` and `Age` (stale when the stream is not
/// live, within the class's stale-if-error limit); miss → fetched from the origin, stored,
/// served. Searches of fully replicated classes are answered locally once the edge has caught
/// up; others are forwarded. Writes are forwarded with an `Idempotency-Key` and the result is
/// stored at once (read-your-writes).
public struct EdgeBackend: FHIRBackend {
    let store: EdgeStore
    let origin: OriginClient
    let link: EdgeLink
    let clock: any WallClock
    let logger: Logger

    public init(store: EdgeStore, origin: OriginClient, link: EdgeLink, clock: any WallClock, logger: Logger) {
        self.store = store
        self.origin = origin
        self.link = link
        self.clock = clock
        self.logger = logger
    }

    /// Cache facts for a locally served answer, or 503 when it is too stale to serve.
    func hitFacts(type: String, storedAt: Int64) throws(FHIRError) -> CacheFacts {
        let policy = DefaultPolicy.policy(forType: type)
        if link.isLive { return CacheFacts(cacheStatus: "edgecache; hit; ttl=\(policy.ttlSeconds)", age: 0) }
        let ageMs = link.stalenessMilliseconds ?? max(0, clock.nowMillis() - storedAt)
        let age = Int(ageMs / 1000)
        if let limit = policy.staleIfErrorSeconds, age > limit {
            throw FHIRError.unavailable(
                "The cached copy (class \(policy.dataClass.rawValue)) is \(age) s old, beyond its stale-if-error limit of \(limit) s, and the origin cannot confirm it",
                retryAfter: 5)
        }
        return CacheFacts(cacheStatus: "edgecache; hit; ttl=\(-age); detail=\"\(link.notLiveReason)\"", age: age)
    }

    private func unreachable(_ what: String) -> FHIRError {
        .unavailable("The origin is unreachable and \(what)", retryAfter: 5)
    }

    public func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        if let entry = try await store.get(type: type, id: id) {
            return ResourceAnswer(resource: entry.resource, cache: try hitFacts(type: type, storedAt: entry.storedAt))
        }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)/\(id)")
        } catch {
            throw unreachable("\(type)/\(id) is not cached here")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        let resource = try OriginReplies.resource(reply, type: type)
        try await store.put(resource)
        return ResourceAnswer(resource: resource, cache: CacheFacts(cacheStatus: "edgecache; fwd=miss; stored", age: 0))
    }

    public func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        if let entry = try await store.get(type: type, id: id), entry.resource.version == version, !entry.resource.deleted {
            return ResourceAnswer(resource: entry.resource, cache: try hitFacts(type: type, storedAt: entry.storedAt))
        }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)/\(id)/_history/\(version)")
        } catch {
            throw unreachable("version \(version) of \(type)/\(id) is not cached here")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        return ResourceAnswer(
            resource: try OriginReplies.resource(reply, type: type), cache: CacheFacts(cacheStatus: "edgecache; fwd=miss", age: 0))
    }

    public func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)/\(id)/_history")
        } catch {
            throw unreachable("history is kept only at the origin")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        let versions = try OriginReplies.history(reply, type: type, id: id)
        return ListAnswer(
            page: SearchPage(resources: versions, total: versions.count, hasMore: false),
            cache: CacheFacts(cacheStatus: "edgecache; fwd=uri-miss", age: 0))
    }

    public func search(_ caller: FHIRCaller, type: String, query: SearchQuery, rawQuery: String?) async throws -> ListAnswer {
        let policy = DefaultPolicy.policy(forType: type)
        let local = policy.replication == .full && link.everCaughtUp
        if local {
            let page = try await store.search(type: type, query: query)
            return ListAnswer(page: page, cache: try hitFacts(type: type, storedAt: clock.nowMillis()))
        }
        var parameters = query.effectiveParameters.map { "\(QueryString.encode($0.0))=\(QueryString.encode($0.1))" }
        parameters.append("_count=\(query.count)")
        if query.offset > 0 { parameters.append("_offset=\(query.offset)") }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)?" + parameters.joined(separator: "&"))
        } catch {
            throw unreachable("\(type) is not replicated in full here, so this search needs it")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        let page = try OriginReplies.searchset(reply, type: type)
        for resource in page.resources { try await store.put(resource) }
        return ListAnswer(page: page, cache: CacheFacts(cacheStatus: "edgecache; fwd=uri-miss", age: 0))
    }

    public func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        let key = idempotencyKey ?? "edge-\(UUID().uuidString.lowercased())"
        var headers = [("Idempotency-Key", key), ("Prefer", "return=representation")]
        let method: HTTPMethod
        let path: String
        var body: [UInt8]?
        let type: String
        switch operation {
        case .create(let t, let resource):
            (method, path, type, body) = (.POST, "/fhir/\(t)", t, JSONValue.object(resource).serialized())
        case .update(let t, let id, var resource, let ifMatch):
            resource["id"] = .string(id)
            resource.moveToFront(["resourceType", "id"])
            (method, path, type, body) = (.PUT, "/fhir/\(t)/\(id)", t, JSONValue.object(resource).serialized())
            if let ifMatch { headers.append(("If-Match", "W/\"\(ifMatch)\"")) }
        case .delete(let t, let id, let ifMatch):
            (method, path, type) = (.DELETE, "/fhir/\(t)/\(id)", t)
            if let ifMatch { headers.append(("If-Match", "W/\"\(ifMatch)\"")) }
        }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: method, path: path, headers: headers, body: body)
        } catch {
            throw unreachable("writes are not queued at the edge yet; retry later with the same Idempotency-Key")
        }
        let relay = [("Idempotency-Key", key)]
        switch reply.status {
        case 200, 201:
            let resource = try OriginReplies.resource(reply, type: type)
            try await store.put(resource)
            return WriteAnswer(status: reply.status, resource: resource, extraHeaders: relay)
        case 204:
            if case .delete(let t, let id, _) = operation, let etag = reply.headers.first(name: "ETag"),
                let version = ETag.version(from: etag)
            {
                let tombstone = ResourceVersion(
                    type: t, id: id, version: version, lastUpdated: clock.nowMillis(), deleted: true, json: [])
                try await store.put(tombstone)
                return WriteAnswer(status: 204, resource: tombstone, extraHeaders: relay)
            }
            return WriteAnswer(status: 204, resource: nil, extraHeaders: relay)
        default:
            throw OriginReplies.error(reply)
        }
    }
}
