import EdgeCacheCore
import EdgeCacheHTTP
import Testing

/// The origin's turn-taking for stream reads and its admission of large bodies.
@Suite struct ReplicationGatesTests {
    @Test func readGateServesWaitersInArrivalOrderAndTimesOut() async throws {
        let gate = ReadGate(permits: 1)
        #expect(await gate.acquire(timeout: .milliseconds(10)))
        // Held: a second acquire times out.
        #expect(await !gate.acquire(timeout: .milliseconds(20)))
        async let first = gate.acquire(timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(50))
        gate.release()
        #expect(await first)
        gate.release()
        #expect(await gate.acquire(timeout: .milliseconds(10)))
        gate.release()
    }

    @Test func largeBodiesAreCappedPerClientAndPerNode() throws {
        let gate = LargeBodyGate(threshold: 1000, maxPerNode: 3, maxPerClient: 2)
        #expect(try gate.admit(length: 10, client: "a") == nil)
        let a1 = try #require(try gate.admit(length: 5000, client: "a"))
        let a2 = try #require(try gate.admit(length: nil, client: "a"))
        #expect { try gate.admit(length: 5000, client: "a") } throws: {
            let e = $0 as? FHIRError
            return e?.status == 429 && e?.headers.contains { $0.0 == "Retry-After" } == true
        }
        let b1 = try #require(try gate.admit(length: 5000, client: "b"))
        #expect { try gate.admit(length: 5000, client: nil) } throws: {
            let e = $0 as? FHIRError
            return e?.status == 503 && e?.headers.contains { $0.0 == "Retry-After" } == true
        }
        a1.release()
        #expect(gate.inFlight == 2)
        let a3 = try #require(try gate.admit(length: 5000, client: "a"))
        for slot in [a2, a3, b1] { slot.release() }
        #expect(gate.inFlight == 0)
    }
}
