import Synchronization

/// A first-come, first-served limit on concurrent work: the origin's change-stream and snapshot
/// batch reads take a permit, so that however many edges catch up at once, at most `permits`
/// batches are read and decrypted at the same time, each stream waits its turn behind the others
/// (one batch per turn), and the API's database readers and CPU stay available.
package final class ReadGate: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }
    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>

    package init(permits: Int) {
        state = Mutex(State(available: max(1, permits)))
    }

    /// Waits up to `timeout` for a permit; false if none came (the caller sends a heartbeat and
    /// asks again, at the back of the queue).
    package func acquire(timeout: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id = state.withLock { state -> UInt64? in
                if state.available > 0, state.waiters.isEmpty {
                    state.available -= 1
                    return nil
                }
                state.nextID += 1
                state.waiters.append(Waiter(id: state.nextID, continuation: continuation))
                return state.nextID
            }
            guard let id else { return continuation.resume(returning: true) }
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    /// Returns a permit: the longest waiter gets it.
    package func release() {
        let next = state.withLock { state -> Waiter? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume(returning: true)
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }
}
