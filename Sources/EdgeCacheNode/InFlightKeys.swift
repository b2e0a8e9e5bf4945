import Synchronization

/// Keys (idempotency keys) whose request is being processed right now, at most one holder
/// each. The origin uses it so a repeat waits for the first request and then gets its stored
/// response; the edge's replayer and its client writes use it so no write is sent twice at once.
///
/// A waiter is resumed when the key is released, in arrival order, and the key passes to it
/// directly (no polling); one that waits longer than it was willing to, or is cancelled, gets
/// false.
package final class InFlightKeys: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        /// Held keys, each with the requests waiting for it.
        var held: [String: [Waiter]] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// Claims `key` if no one holds it.
    package func claim(_ key: String) -> Bool {
        state.withLock { state in
            guard state.held[key] == nil else { return false }
            state.held[key] = []
            return true
        }
    }

    /// Claims `key`, waiting up to `wait` for its holder to release it.
    package func claim(_ key: String, waiting wait: Duration) async -> Bool {
        if claim(key) { return true }
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let queued = state.withLock { state -> Bool in
                    guard state.held[key] != nil else {
                        state.held[key] = []  // released meanwhile: it is ours
                        return false
                    }
                    state.held[key]!.append(Waiter(id: id, continuation: continuation))
                    return true
                }
                guard queued else { return continuation.resume(returning: true) }
                Task {
                    try? await Task.sleep(for: wait)
                    self.giveUp(key, id)
                }
            }
        } onCancel: {
            giveUp(key, id)
        }
    }

    /// Releases `key`: the longest waiter, if any, holds it from now on.
    package func release(_ key: String) {
        let next = state.withLock { state -> Waiter? in
            guard var waiters = state.held[key] else { return nil }
            guard !waiters.isEmpty else {
                state.held[key] = nil
                return nil
            }
            let first = waiters.removeFirst()
            state.held[key] = waiters
            return first
        }
        next?.continuation.resume(returning: true)
    }

    /// Stops waiting for `key` (timed out or cancelled), if still waiting.
    private func giveUp(_ key: String, _ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.held[key]?.firstIndex(where: { $0.id == id }) else { return nil }
            return state.held[key]!.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }
}
