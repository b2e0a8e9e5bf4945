import Synchronization

/// Idempotency keys whose first request is still being processed.
///
/// A repeat that arrives meanwhile waits (briefly) for the first to finish and then gets its
/// stored response; if the first is still running after `wait`, the repeat gets 409.
package final class InFlightKeys: Sendable {
    private let keys = Mutex<Set<String>>([])

    package init() {}

    /// Claims `key`; false if it is already in flight.
    package func claim(_ key: String) -> Bool { keys.withLock { $0.insert(key).inserted } }

    package func release(_ key: String) { _ = keys.withLock { $0.remove(key) } }

    /// Claims `key`, waiting up to `wait` for an in-flight holder to finish.
    package func claim(_ key: String, waiting wait: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + wait
        while !claim(key) {
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(2))
        }
        return true
    }
}
