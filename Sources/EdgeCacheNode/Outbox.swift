import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Foundation

/// Owns the edge's writes: the idempotency key (claimed so no write is sent twice at once), the
/// If-Match projection over writes still pending, the durable enqueue (``OutboxQueue``, group
/// commit), the immediate send when the origin is reachable (through the ``Replayer``), and
/// completion or discard of the answer; what cannot be sent now is answered 202 and replayed
/// later by the ``Replayer``.
package struct Outbox: Sendable {
    let store: EdgeStore
    let queue: OutboxQueue
    let replayer: Replayer
    let link: EdgeLink
    let maxAttempts: Int
    /// The cached entry of a resource (nil when none, or quarantined).
    let cached: @Sendable (String, String) async throws -> CachedEntry?

    /// Writes go through the outbox: durable first (group commit), then sent at once when the
    /// origin is reachable and nothing earlier for the resource is waiting; otherwise the client
    /// gets 202 and the replayer delivers it later. Creates get their id here.
    package func write(_ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 255 {
            throw FHIRError.invalid("Idempotency-Key must be 1 to 255 characters")
        }
        let key = idempotencyKey ?? "edge-\(UUID().uuidString.lowercased())"
        let item: ReplayItem
        switch operation {
        case .create(let type, var resource):
            let id = UUID().uuidString.lowercased()
            resource["id"] = .string(id)
            resource.moveToFront(["resourceType", "id"])
            item = ReplayItem(key: key, method: .put, type: type, id: id, ifMatch: nil, resource: JSONValue.object(resource).serialized())
        case .update(let type, let id, var resource, let ifMatch):
            resource["id"] = .string(id)
            resource.moveToFront(["resourceType", "id"])
            item = ReplayItem(
                key: key, method: .put, type: type, id: id, ifMatch: ifMatch, resource: JSONValue.object(resource).serialized())
        case .delete(let type, let id, let ifMatch):
            item = ReplayItem(key: key, method: .delete, type: type, id: id, ifMatch: ifMatch, resource: [])
        }
        // Claimed before it is queued, so the replayer leaves it to this request (and a
        // concurrent retry with the same key waits for this one).
        guard await replayer.claim(key: key) else {
            throw FHIRError(status: 409, code: "conflict", "A request with this Idempotency-Key is still in progress; retry later")
        }
        defer { replayer.release(key: key) }
        var request = EnqueueRequest(item: item, fingerprint: operation.fingerprintBytes)
        var isCreate = false
        if case .create = operation { isCreate = true }
        let unfinished = try await store.outbox.hasUnfinishedWrites(type: item.type, id: item.id)
        if item.ifMatch == nil, !isCreate, !link.isLive || unfinished {
            // A write that will be replayed later is based on the version this edge shows now;
            // if the origin's version has moved on by then, the class's conflict rule decides.
            if let pending = try await store.outbox.pendingWrite(type: item.type, id: item.id) {
                request.item.ifMatch = pending.item.method == .delete ? nil : pending.projectedVersion
            } else if let cached = try await cached(item.type, item.id), !cached.resource.deleted {
                request.item.ifMatch = cached.resource.version
            }
        }
        let entry: OutboxEntry
        switch try await queue.enqueue(request) {
        case .keyReused:
            throw FHIRError(
                status: 422, code: "business-rule",
                "This Idempotency-Key was already used for a different request; use a new key for a new request")
        case .full:
            throw FHIRError.unavailable("The edge's outbox is full; the write was not accepted", retryAfter: 30)
        case .queued(let queued, _):
            entry = queued
        }
        switch entry.state {
        case .discarded:
            throw FHIRError(status: 409, code: "conflict", "This write was discarded at the edge (by an operator or after a refusal)")
        case .review:
            return queuedAnswer(entry, key: key, status: .review)
        case .done, .queued:
            break
        }
        let isHead = !(try await store.outbox.hasEarlierUnfinishedWrites(entry))
        guard isHead, entry.state == .done || link.isLive else { return queuedAnswer(entry, key: key, status: .queued) }
        let outcomes: [(OutboxEntry, ReplayOutcome, ReplayResult?)]
        do {
            outcomes = try await replayer.replayWithResults([entry])
        } catch {
            if entry.state == .done, let cached = try await cached(entry.item.type, entry.item.id),
                cached.resource.version >= (entry.resultVersion ?? 0)
            {
                // Already committed: a retry gets the committed answer even while the origin is away.
                let committed = entry.item.method == .delete ? nil : cached.resource
                let status = entry.item.method == .delete ? 204 : (entry.resultVersion == 1 ? 201 : 200)
                return WriteAnswer(status: status, resource: committed, idempotencyKey: key)
            }
            return queuedAnswer(entry, key: key, status: .queued)
        }
        let (_, outcome, result) = outcomes[0]
        switch outcome {
        case .committed(let version):
            try await store.outbox.complete([(entry, outcome)], maxAttempts: maxAttempts)
            if entry.item.method == .delete { return WriteAnswer(status: 204, resource: version, idempotencyKey: key) }
            return WriteAnswer(status: result?.status == 201 ? 201 : 200, resource: version, idempotencyKey: key)
        case .retry:
            return queuedAnswer(entry, key: key, status: .queued)
        case .conflict, .overwrite:
            // Refused while the client is still waiting: tell it now rather than queue for review.
            try await store.outbox.discard(seq: entry.seq)
            throw FHIRError.preconditionFailed(result?.diagnostics ?? "The resource changed at the origin")
        case .review(let reason):
            try await store.outbox.discard(seq: entry.seq)
            throw FHIRError(status: result?.status ?? 422, code: result?.code ?? "processing", result?.diagnostics ?? reason)
        }
    }

    /// 202 Accepted: the write is durable at the edge and not yet committed at the origin.
    private func queuedAnswer(_ entry: OutboxEntry, key: String, status: OutboxFacts.State) -> WriteAnswer {
        let outbox = OutboxFacts(status, seq: entry.seq)
        if entry.item.method == .delete {
            return WriteAnswer(status: 202, resource: nil, idempotencyKey: key, outbox: outbox)
        }
        return WriteAnswer(status: 202, resource: Self.pendingView(entry, code: status.rawValue), idempotencyKey: key, outbox: outbox)
    }

    /// The resource as it will be, marked as queued (meta.tag) so no reader can mistake it for
    /// a committed version.
    static func pendingView(_ entry: OutboxEntry, code: String = "queued") -> ResourceVersion {
        var json: [UInt8] = []
        if case .object(var object)? = try? JSONParser.parse(entry.item.resource) {
            var meta = object["meta"]?.objectValue ?? JSONObject()
            var tags = meta["tag"]?.arrayValue ?? []
            tags.append(
                .object(
                    JSONObject([
                        .init(key: "system", value: .string(pendingTagSystem)), .init(key: "code", value: .string(code)),
                        .init(
                            key: "display",
                            value: .string(
                                code == "review"
                                    ? "Held at the edge for review; not committed at the origin"
                                    : "Queued at the edge; not yet committed at the origin")),
                    ])))
            meta["tag"] = .array(tags)
            object["meta"] = .object(meta)
            json = FHIRResource.stamp(object, id: entry.item.id, version: entry.projectedVersion, lastUpdated: entry.createdAt)
        }
        return ResourceVersion(
            type: entry.item.type, id: entry.item.id, version: entry.projectedVersion, lastUpdated: entry.createdAt,
            deleted: entry.item.method == .delete, json: json)
    }

    package static let pendingTagSystem = "https://edgecache.dev/fhir/write-status"
}
