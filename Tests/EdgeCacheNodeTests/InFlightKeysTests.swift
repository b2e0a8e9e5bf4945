import Testing

@testable import EdgeCacheNode

/// One in-flight key mechanism for the origin's idempotency and the edge's outbox (issue 14
/// item 2): a waiter gets the key when it is released, in arrival order; one that waits too
/// long or is cancelled gets false and leaves the key to others.
@Suite struct InFlightKeysTests {
    @Test func aReleasedKeyPassesToItsWaitersInOrder() async throws {
        let keys = InFlightKeys()
        #expect(keys.claim("k"))
        #expect(!keys.claim("k"))
        let first = Task { await keys.claim("k", waiting: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        let second = Task { await keys.claim("k", waiting: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        keys.release("k")
        #expect(await first.value)
        #expect(!keys.claim("k"))  // held by the first waiter now
        keys.release("k")
        #expect(await second.value)
        keys.release("k")
        #expect(keys.claim("k"))
    }

    @Test func aWaiterGivesUpAfterItsWaitAndOnCancel() async throws {
        let keys = InFlightKeys()
        #expect(keys.claim("k"))
        let start = ContinuousClock.now
        #expect(!(await keys.claim("k", waiting: .milliseconds(100))))
        #expect(ContinuousClock.now - start < .seconds(5))
        let cancelled = Task { await keys.claim("k", waiting: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(!(await cancelled.value))
        // Those that gave up do not hold the key after its release.
        keys.release("k")
        #expect(keys.claim("k"))
        #expect(await keys.claim("other", waiting: .milliseconds(1)))
    }
}
