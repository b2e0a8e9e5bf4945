import Synchronization

/// Collects concurrent requests and commits them together, so that concurrent writers share one
/// durable commit (one fsync) instead of queuing for one each.
///
/// Each caller's `submit` returns only after the batch holding its request is committed.
package final class GroupCommitter<Request: Sendable, Response: Sendable>: Sendable {
    private struct Waiting: @unchecked Sendable {
        var request: Request
        var continuation: CheckedContinuation<Response, any Error>
    }

    private let state = Mutex<(pending: [Waiting], draining: Bool)>(([], false))
    private let commit: @Sendable ([Request]) async throws -> [Response]
    private let maxBatch: Int

    /// - Parameter commit: commits a batch durably and returns one response per request, in order.
    package init(maxBatch: Int = 1024, commit: @escaping @Sendable ([Request]) async throws -> [Response]) {
        self.commit = commit
        self.maxBatch = maxBatch
    }

    package func submit(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.pending.append(Waiting(request: request, continuation: continuation))
                if state.draining { return false }
                state.draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let responses = try await commit(batch.map(\.request))
                for (waiting, response) in zip(batch, responses) { waiting.continuation.resume(returning: response) }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
