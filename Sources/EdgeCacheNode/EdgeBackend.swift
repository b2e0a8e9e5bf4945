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
/// up; others are forwarded. Writes go through the outbox (durable first, then sent at once
/// when the origin is reachable; 202 and replayed later when not), and a committed result is
/// stored at once (read-your-writes).
package struct EdgeBackend: FHIRBackend {
    let store: EdgeStore
    let origin: OriginClient
    let link: EdgeLink
    let clock: any WallClock
    let outbox: OutboxQueue
    let replayer: Replayer
    let maxAttempts: Int
    let policies: PolicyHolder
    /// Set by the runtime: resources of patients whose consent blocks everything are not stored.
    let consent: ConsentGuard?
    /// Told about reads (least-recently-read eviction).
    let evictor: Evictor?
    let logger: Logger

    /// How old a cached entry is: the time since the origin last confirmed it, either by the
    /// live stream (which would have delivered any change) or by storing / revalidating it.
    func ageMilliseconds(storedAt: Int64) -> Int64 {
        let sinceStored = max(0, clock.nowMillis() - storedAt)
        guard let streamAge = link.stalenessMilliseconds else { return sinceStored }
        return min(streamAge, sinceStored)
    }

    /// Cache facts for an entry within its class's TTL; nil when it must be revalidated.
    func freshFacts(_ policy: ClassPolicy, ageMs: Int64) -> CacheFacts? {
        let age = Int(ageMs / 1000)
        guard ageMs <= Int64(policy.ttlSeconds) * 1000 else { return nil }
        if link.isLive { return CacheFacts(.hit, ttl: policy.ttlSeconds - age, age: age) }
        return CacheFacts(.hit, ttl: policy.ttlSeconds - age, detail: link.notLiveReason, age: age)
    }

    /// Cache facts for an entry past its TTL that the origin could not confirm: served stale
    /// within the class's stale-if-error limit, else 503 naming the class and the age.
    func staleFacts(_ policy: ClassPolicy, ageMs: Int64, type: String) throws(FHIRError) -> CacheFacts {
        let age = Int(ageMs / 1000)
        if let limit = policy.staleIfErrorSeconds, age > limit {
            throw FHIRError.unavailable(
                "The cached copy of this \(type) (class \(policy.dataClass.rawValue)) is \(age) s old, beyond its stale-if-error limit of \(limit) s, and the origin cannot confirm it",
                retryAfter: 5)
        }
        let reason = link.isLive ? "origin-error" : link.notLiveReason
        return CacheFacts(.hit, ttl: policy.ttlSeconds - age, detail: reason, age: age)
    }

    private func unreachable(_ what: String) -> FHIRError {
        .unavailable("The origin is unreachable and \(what)", retryAfter: 5)
    }

    package func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        // Fast path: with nothing queued (the usual case) reads skip the outbox lookup.
        if store.outbox.queuedCount > 0, let pending = try await store.outbox.pendingWrite(type: type, id: id) {
            return ResourceAnswer(
                resource: Outbox.pendingView(pending),
                cache: CacheFacts(.pendingWrite, age: 0), outbox: OutboxFacts(.queued, seq: pending.seq))
        }
        let cached = try await cachedEntry(type: type, id: id)
        if let entry = cached.entry {
            evictor?.touched(type: type, id: id)
            let policy = policies.policy(forType: type)
            let ageMs = ageMilliseconds(storedAt: entry.storedAt)
            if let facts = freshFacts(policy, ageMs: ageMs) { return ResourceAnswer(resource: entry.resource, cache: facts) }
            return try await revalidate(entry, policy: policy, ageMs: ageMs)
        }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)/\(id)")
        } catch {
            if cached.quarantined { throw quarantinedUnavailable("\(type)/\(id)") }
            throw unreachable("\(type)/\(id) is not cached here")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        let resource = try OriginReplies.resource(reply, type: type)
        guard consent?.mayStore(resource) ?? true else {
            return ResourceAnswer(resource: resource, cache: CacheFacts(.miss(stored: false), age: 0))
        }
        try await store.entries.put(resource)
        return ResourceAnswer(resource: resource, cache: CacheFacts(.miss(stored: true), age: 0))
    }

    /// Past its TTL: a conditional GET to the origin (304 → the entry is confirmed; 200 → the
    /// new version is stored); if the origin cannot answer, the stale-if-error rule decides.
    func revalidate(_ entry: CachedEntry, policy: ClassPolicy, ageMs: Int64) async throws -> ResourceAnswer {
        let r = entry.resource
        let reply = try? await origin.send(
            method: .GET, path: "/fhir/\(r.type)/\(r.id)", headers: [("If-None-Match", "W/\"\(r.version)\"")])
        guard let reply else { return ResourceAnswer(resource: r, cache: try staleFacts(policy, ageMs: ageMs, type: r.type)) }
        switch reply.status {
        case 304:
            try await store.entries.confirm(type: r.type, id: r.id, version: r.version, at: clock.nowMillis())
            return ResourceAnswer(
                resource: r, cache: CacheFacts(.revalidated(originStatus: 304, stored: false), ttl: policy.ttlSeconds, age: 0))
        case 200:
            let resource = try OriginReplies.resource(reply, type: r.type)
            if consent?.mayStore(resource) ?? true { try await store.entries.put(resource) }
            return ResourceAnswer(
                resource: resource, cache: CacheFacts(.revalidated(originStatus: 200, stored: true), age: 0))
        case 404, 410:
            throw OriginReplies.error(reply)
        default:
            return ResourceAnswer(resource: r, cache: try staleFacts(policy, ageMs: ageMs, type: r.type))
        }
    }

    package func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        if let entry = try await cachedEntry(type: type, id: id).entry, entry.resource.version == version, !entry.resource.deleted {
            // A version never changes: it is served from the cache whatever its age.
            let ageMs = ageMilliseconds(storedAt: entry.storedAt)
            let policy = policies.policy(forType: type)
            let facts = freshFacts(policy, ageMs: ageMs) ?? CacheFacts(.hit, detail: "version", age: Int(ageMs / 1000))
            return ResourceAnswer(resource: entry.resource, cache: facts)
        }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)/\(id)/_history/\(version)")
        } catch {
            throw unreachable("version \(version) of \(type)/\(id) is not cached here")
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        return ResourceAnswer(
            resource: try OriginReplies.resource(reply, type: type), cache: CacheFacts(.miss(stored: false), age: 0))
    }

    package func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
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
            cache: CacheFacts(.uriMiss, age: 0))
    }

    package func search(_ caller: FHIRCaller, type: String, query: SearchQuery) async throws -> ListAnswer {
        let policy = policies.policy(forType: type)
        var local = policy.replication == .full && link.everCaughtUp
        // With an entry of the type quarantined, the local copy is incomplete: the origin answers.
        var incomplete = false
        if local { incomplete = try await store.entries.hasQuarantined(type: type) }
        if incomplete { local = false }
        // Writes still queued show in searches as they do in reads (``read(_:type:id:)``).
        let pending = store.outbox.queuedCount > 0 ? try await store.outbox.pendingWrites(type: type) : []
        let streamAge = link.stalenessMilliseconds ?? Int64.max
        let localSearch: @Sendable (SearchQuery) async throws -> SearchPage = { [store] q in
            try await store.entries.search(type: type, query: q)
        }
        if local, let facts = freshFacts(policy, ageMs: streamAge) {
            do {
                return ListAnswer(page: try await Self.overlay(pending, on: query, search: localSearch), cache: facts)
            } catch let error as CorruptEntryError {
                reportQuarantine(error, type: type)
                (local, incomplete) = (false, true)
            }
        }
        do {
            let page = try await Self.overlay(pending, on: query) { q in try await self.forward(type: type, query: q) }
            return ListAnswer(page: page, cache: CacheFacts(.uriMiss, age: 0))
        } catch is OriginUnreachable {
            if local {
                // Past the TTL and the origin cannot answer: the stale-if-error rule decides.
                let facts = try staleFacts(policy, ageMs: streamAge, type: type)
                do {
                    return ListAnswer(page: try await Self.overlay(pending, on: query, search: localSearch), cache: facts)
                } catch let error as CorruptEntryError {
                    reportQuarantine(error, type: type)
                    throw quarantinedUnavailable("a complete answer to this \(type) search")
                }
            }
            if incomplete { throw quarantinedUnavailable("a complete answer to this \(type) search") }
            throw unreachable("\(type) is not replicated in full here, so this search needs it")
        }
    }

    /// The origin could not be asked (as opposed to an answer that is an error).
    private struct OriginUnreachable: Error {}

    /// The origin's answer to `query`, its resources stored as misses are.
    private func forward(type: String, query: SearchQuery) async throws -> SearchPage {
        var parameters = query.effectiveParameters.map { "\(QueryString.encode($0.0))=\(QueryString.encode($0.1))" }
        parameters.append("_count=\(query.count)")
        if query.offset > 0 { parameters.append("_offset=\(query.offset)") }
        let reply: OriginClient.Reply
        do {
            reply = try await origin.send(method: .GET, path: "/fhir/\(type)?" + parameters.joined(separator: "&"))
        } catch {
            throw OriginUnreachable()
        }
        guard reply.status == 200 else { throw OriginReplies.error(reply) }
        let page = try OriginReplies.searchset(reply, type: type)
        for resource in page.resources where consent?.mayStore(resource) ?? true { try await store.entries.put(resource) }
        return page
    }

    /// The page `search` gives for `query` with the queued writes `pending` in place of the
    /// versions they replace: a queued update that still matches shows as it will be (tagged as
    /// queued, as a read shows it), one that no longer matches and a queued delete drop out, a
    /// queued create that matches joins. Exact for any sort and page: the page is cut from the
    /// first `offset + count + pending` matches, and the total is corrected by the pending
    /// resources that matched before (one `_id` search per 100 of them).
    static func overlay(
        _ pending: [OutboxEntry], on query: SearchQuery, search: (SearchQuery) async throws -> SearchPage
    ) async throws -> SearchPage {
        guard !pending.isEmpty else { return try await search(query) }
        let pendingIDs = Set(pending.map(\.item.id))
        var wide = query
        wide.offset = 0
        wide.count = query.offset + query.count + pending.count
        let before = try await search(wide)
        var replacedMatches = 0
        let ids = pendingIDs.sorted()
        for start in stride(from: 0, to: ids.count, by: 100) {
            var probe = query
            let chunk = Array(ids[start..<min(ids.count, start + 100)])
            probe.ids = query.ids.map { Set($0).intersection(chunk).sorted() } ?? chunk
            probe.effectiveParameters.append(("_id", chunk.joined(separator: ",")))
            probe.offset = 0
            probe.count = 0
            replacedMatches += try await search(probe).total ?? 0
        }
        var all = query
        all.offset = 0
        all.count = pending.count
        let joining = all.select(pending.map { Outbox.pendingView($0) }.filter(query.withinTermGroups)).resources
        var merged = query
        merged.ids = nil
        var page = merged.select(before.resources.filter { !pendingIDs.contains($0.id) } + joining)
        let total = (before.total ?? before.resources.count) - replacedMatches + joining.count
        page.total = total
        page.hasMore = total > query.offset + page.resources.count
        page.matchIDs = nil  // cut from the first matches only
        return page
    }

    /// Writes are the outbox's (``Outbox``): durable first, then sent at once or replayed.
    package func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        try await writes.write(operation, idempotencyKey: idempotencyKey)
    }

    /// The outbox in front of this backend's store, reading cached entries through it (a
    /// quarantined entry counts as absent).
    var writes: Outbox {
        Outbox(
            store: store, queue: outbox, replayer: replayer, link: link, maxAttempts: maxAttempts,
            cached: { type, id in try await cachedEntry(type: type, id: id).entry })
    }
}
