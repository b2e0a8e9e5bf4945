import EdgeCacheCore
import EdgeCacheStore

/// The edge's way into its outbox: concurrent writers share one durable commit (group commit),
/// and the outbox's size is bounded (503 beyond it; an accepted write is never dropped).
public final class OutboxQueue: Sendable {
    let committer: GroupCommitter<EnqueueRequest, EnqueueOutcome>

    public init(store: EdgeStore, maxEntries: Int) {
        committer = GroupCommitter { requests in try await store.enqueue(requests, maxQueued: maxEntries) }
    }

    /// Returns once the write is durable (WAL, synchronous=FULL) or refused.
    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome {
        try await committer.submit(request)
    }
}
