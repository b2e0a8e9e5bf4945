import EdgeCacheCore
import EdgeCacheStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// Drains the edge's outbox to the origin: in order per resource, in batches, on its own as
/// soon as the origin answers again (it probes while the link is down), with jittered backoff
/// for retriable failures and the review queue for everything a person must decide.
package final class Replayer: Service {
    let store: EdgeStore
    let origin: OriginClient
    let link: EdgeLink
    let logger: Logger
    let batchSize: Int
    let maxAttempts: Int
    let retentionMilliseconds: Int64
    /// How often to try the origin while the change stream says it is down.
    let probeIntervalMilliseconds: Int64 = 1000
    let policies: PolicyHolder
    let audit: AuditLog?
    let tenant: String
    /// Idempotency keys of writes being sent right now (by this loop or by a client's write at
    /// the edge), so no write is sent twice at once.
    private let inFlight = InFlightKeys()

    /// Claims entries for sending (at most `limit`); returns those no one else is sending.
    package func claim(_ entries: [OutboxEntry], limit: Int = .max) -> [OutboxEntry] {
        var claimed: [OutboxEntry] = []
        for entry in entries where claimed.count < limit && inFlight.claim(entry.item.key) { claimed.append(entry) }
        return claimed
    }

    /// Claims one key, waiting (up to `timeoutMilliseconds`) while someone else sends it.
    package func claim(key: String, timeoutMilliseconds: Int64 = 5000) async -> Bool {
        await inFlight.claim(key, waiting: .milliseconds(timeoutMilliseconds))
    }

    package func release(_ entries: [OutboxEntry]) {
        for entry in entries { inFlight.release(entry.item.key) }
    }

    package func release(key: String) { inFlight.release(key) }

    package init(
        store: EdgeStore, origin: OriginClient, link: EdgeLink, batchSize: Int, maxAttempts: Int, retentionDays: Int = 7,
        policies: PolicyHolder = PolicyHolder(), audit: AuditLog? = nil, tenant: String = "", logger: Logger
    ) {
        self.policies = policies
        self.audit = audit
        self.tenant = tenant
        self.retentionMilliseconds = Int64(retentionDays) * 86_400_000
        self.store = store
        self.origin = origin
        self.link = link
        self.batchSize = batchSize
        self.maxAttempts = maxAttempts
        self.logger = logger
    }

    /// The origin could not take the batch (unreachable, or the whole batch failed).
    struct BatchFailed: Error, CustomStringConvertible {
        let reason: String
        /// Whether sending the entries one by one may get past it (a batch-level refusal).
        var split = false
        var description: String { reason }
    }

    /// Shared by the replay lanes: when to probe again after failures, and whether to send
    /// one write at a time.
    private struct LaneState {
        var nextProbe: Int64 = 0
        var failures = 0
        var singles = false
        var nextHousekeeping: Int64 = 0
    }

    private let laneState = Mutex(LaneState())

    /// Batches in flight at once: while the origin commits one, the next is read and sent and
    /// the previous one's results are recorded. Per-resource order holds because a batch only
    /// takes a resource's oldest unfinished write, and that one stays unfinished until settled.
    let lanes = 2

    package func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask { await self.lane(lane) }
            }
        }
    }

    private func lane(_ lane: Int) async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = link.clock.nowMillis()
            let (housekeeping, probeDue, singles) = laneState.withLock { state -> (Bool, Bool, Bool) in
                let housekeeping = lane == 0 && now >= state.nextHousekeeping
                if housekeeping { state.nextHousekeeping = now + 2000 }
                return (housekeeping, now >= state.nextProbe, state.singles)
            }
            if housekeeping {
                try? await store.outbox.refreshQueuedCount()
                _ = try? await store.outbox.expire(before: store.clock.nowMillis() - retentionMilliseconds)
            }
            // After a batch-level refusal, entries go one at a time (one lane) until one succeeds,
            // so a single bad write is set aside on its own instead of holding up the rest.
            var entries: [OutboxEntry] = []
            if probeDue && (!singles || lane == 0) {
                do {
                    let limit = singles ? 1 : batchSize
                    entries = claim(try await store.outbox.nextReplayBatch(limit: limit * lanes), limit: limit)
                } catch {
                    logger.error("cannot read the outbox", metadata: ["error": "\(error)"])
                }
            }
            if entries.isEmpty {
                do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
                continue
            }
            defer { release(entries) }
            do {
                let outcomes = try await replay(entries)
                try await store.outbox.complete(outcomes, maxAttempts: maxAttempts)
                auditOutcomes(outcomes)
                let setAside = outcomes.filter { entry, outcome in
                    switch outcome {
                    case .review, .conflict: return true
                    case .retry: return entry.attempts + 1 >= maxAttempts
                    default: return false
                    }
                }
                if !setAside.isEmpty {
                    // An alert for operators: these writes wait for a person (edgecache outbox/conflicts).
                    logger.error(
                        "outbox entries set aside for review", metadata: ["count": "\(setAside.count)", "seqs": "\(setAside.map(\.0.seq))"])
                }
                laneState.withLock {
                    $0.failures = 0
                    $0.nextProbe = 0
                    $0.singles = false
                }
            } catch {
                let failures = laneState.withLock { state -> Int in
                    state.failures += 1
                    if let failed = error as? BatchFailed, failed.split { state.singles = true }
                    let ceiling = min(probeIntervalMilliseconds, Int64(50) << min(state.failures, 10))
                    state.nextProbe = link.clock.nowMillis() + Int64(Double(ceiling) * Double.random(in: 0.5...1.0))
                    return state.failures
                }
                if failures == 1 {
                    logger.notice("outbox replay waiting for the origin", metadata: ["reason": "\(error)"])
                }
            }
        }
    }

    /// Records what became of replayed writes (retries are not recorded until they settle).
    func auditOutcomes(_ outcomes: [(OutboxEntry, ReplayOutcome)]) {
        guard let audit else { return }
        for (entry, outcome) in outcomes {
            let resource = "\(entry.item.type)/\(entry.item.id)"
            let detail = "outbox seq=\(entry.seq); key=\(entry.item.key.prefix(64))"
            switch outcome {
            case .committed(let version):
                audit.event("replay", outcome: 200, tenant: tenant, resource: resource, version: version?.version, detail: detail)
            case .review(let reason):
                audit.event("replay-rejected", outcome: 422, tenant: tenant, resource: resource, detail: "\(detail); \(reason)")
            case .conflict(let origin):
                audit.event(
                    "conflict-review", outcome: 409, tenant: tenant, resource: resource, version: origin?.version,
                    detail: "\(detail); rule reject; base=\(entry.item.ifMatch.map(String.init) ?? "-")")
            case .overwrite:
                audit.event(
                    "conflict-overwrite", outcome: 409, tenant: tenant, resource: resource,
                    detail: "\(detail); rule last-writer-wins; base=\(entry.item.ifMatch.map(String.init) ?? "-")")
            case .retry:
                continue
            }
        }
    }

    /// Sends `entries` as one batch and settles each result. Throws when the batch as a whole
    /// did not reach the origin (nothing is counted against the entries then).
    package func replay(_ entries: [OutboxEntry]) async throws -> [(OutboxEntry, ReplayOutcome)] {
        try await replayWithResults(entries).map { ($0.0, $0.1) }
    }

    /// ``replay(_:)`` with the origin's raw answer for each entry (nil when the batch was refused).
    package func replayWithResults(_ entries: [OutboxEntry]) async throws -> [(OutboxEntry, ReplayOutcome, ReplayResult?)] {
        let reply: OriginClient.Reply
        // The origin refuses writes based on another log epoch (a restore): they wait for the
        // bootstrap, which queues the writes the restored origin may have lost before them.
        let known = store.stream.originEpoch
        do {
            reply = try await origin.send(
                method: .POST, path: "/replication/v1/writes",
                headers: [("Content-Type", "application/x-ndjson")] + (known.map { [(LogEpoch.headerName, $0.hex)] } ?? []),
                body: ReplayBatchCodec.encode(entries.map(\.item)), contentType: "application/x-ndjson")
        } catch {
            throw BatchFailed(reason: "origin unreachable")
        }
        if reply.status == 409, let known, let epoch = reply.headers.first(name: LogEpoch.headerName), epoch != known.hex {
            throw BatchFailed(reason: "origin log epoch changed; waiting for the bootstrap")
        }
        guard reply.status == 200 else {
            if entries.count > 1 { throw BatchFailed(reason: "origin answered \(reply.status) to a batch", split: true) }
            let entry = entries[0]
            if reply.status >= 500 || reply.status == 429 || reply.status == 408 {
                return [(entry, .retry(error: "origin answered \(reply.status)", retryAt: retryTime(entry)), nil)]
            }
            let error = OriginReplies.error(reply)
            return [(entry, .review(reason: "the origin refused it: \(error.status) \(error.code)"), nil)]
        }
        let results: [ReplayResult]
        do {
            results = try ReplayBatchCodec.decodeResults(reply.body)
        } catch {
            throw BatchFailed(reason: "unreadable batch answer")
        }
        // Answers are matched to writes by key, type and id, not just position.
        guard results.count == entries.count,
            zip(entries, results).allSatisfy({ entry, result in
                result.key == entry.item.key
                    && (result.version.map { $0.type == entry.item.type && $0.id == entry.item.id } ?? true)
                    && (result.version.map { $0.deleted || (try? JSONParser.parse($0.json)) != nil } ?? true)
            })
        else { throw BatchFailed(reason: "the batch answer does not match the batch") }
        var settled: [(OutboxEntry, ReplayOutcome, ReplayResult?)] = []
        for (entry, result) in zip(entries, results) {
            settled.append((entry, await settle(entry, result), result))
        }
        return settled
    }

    private func settle(_ entry: OutboxEntry, _ result: ReplayResult) async -> ReplayOutcome {
        switch result.status {
        case 200, 201, 204:
            return .committed(result.version)
        case 412:
            switch policies.policy(forType: entry.item.type).conflictRule {
            case .lastWriterWins:
                return .overwrite
            case .reject:
                // Record the origin's version beside the edge's write; if it cannot be read now,
                // try again later rather than record a conflict without it.
                guard let current = try? await origin.send(method: .GET, path: "/fhir/\(entry.item.type)/\(entry.item.id)") else {
                    return .retry(error: "conflict found, origin version not readable yet", retryAt: retryTime(entry))
                }
                switch current.status {
                case 200:
                    guard let version = try? OriginReplies.resource(current, type: entry.item.type) else {
                        return .retry(error: "conflict found, origin version unreadable", retryAt: retryTime(entry))
                    }
                    return .conflict(origin: version)
                case 404, 410:
                    return .conflict(origin: nil)
                default:
                    return .retry(error: "conflict found, origin answered \(current.status)", retryAt: retryTime(entry))
                }
            }
        case 408, 409, 429, 500...599:
            return .retry(error: "origin answered \(result.status)", retryAt: retryTime(entry))
        default:
            // Only the status and issue code are kept in the clear; diagnostics may name resources.
            return .review(reason: "rejected by the origin: \(result.status) \(result.code ?? "")")
        }
    }

    /// When to try a retriable entry again: exponential from 200 ms to 60 s, with jitter.
    private func retryTime(_ entry: OutboxEntry) -> Int64 {
        let backoff = min(60_000, 200 << min(entry.attempts, 9))
        return store.clock.nowMillis() + Int64(Double(backoff) * Double.random(in: 0.5...1.0))
    }
}
