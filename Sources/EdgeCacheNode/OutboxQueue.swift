import EdgeCacheCore
import EdgeCacheStore

/// The edge's way into its outbox: concurrent writers share one durable commit (group commit),
/// and the outbox's size is bounded (503 beyond it; an accepted write is never dropped).
package final class OutboxQueue: Sendable {
    let committer: GroupCommitter<PreparedEnqueue, EnqueueOutcome>
    let store: EdgeStore

    package init(store: EdgeStore, maxEntries: Int) {
        self.store = store
        committer = GroupCommitter { prepared in try await store.outbox.enqueue(prepared: prepared, maxQueued: maxEntries) }
    }

    /// Returns once the write is durable (WAL, synchronous=FULL) or refused. Hashing and sealing
    /// happen on the caller's task; only the SQL runs in the shared commit.
    package func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome {
        try await committer.submit(try store.outbox.prepare(request))
    }
}
