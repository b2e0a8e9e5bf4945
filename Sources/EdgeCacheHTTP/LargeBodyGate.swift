import EdgeCacheCore
import Synchronization

/// Admits large request bodies a few at a time, per node and per client.
///
/// A large body (at least `threshold` bytes by its `Content-Length`, or of unknown length) takes
/// a slot for the whole request: its collection, parsing and write. Over the per-client cap the
/// request is refused with 429, over the per-node cap with 503, both with `Retry-After` and an
/// OperationOutcome, before the body is read. Shortly after the last large request of the node
/// ends, the allocator is asked to give freed memory back to the system (glibc keeps it otherwise).
package final class LargeBodyGate: Sendable {
    package let threshold: Int
    package let maxPerNode: Int
    package let maxPerClient: Int
    private struct State {
        var inFlight = 0
        var perClient: [String: Int] = [:]
    }
    private let state = Mutex(State())

    package init(threshold: Int = 1 << 20, maxPerNode: Int = 4, maxPerClient: Int = 2) {
        self.threshold = threshold
        self.maxPerNode = max(1, maxPerNode)
        self.maxPerClient = max(1, maxPerClient)
    }

    /// A slot held by one request; ``release()`` it exactly once.
    package struct Slot: Sendable {
        let gate: LargeBodyGate
        let client: String?

        package func release() { gate.release(client: client) }
    }

    /// Takes a slot for a body of `length` bytes (nil: unknown) from `client` (nil: not capped
    /// per client, e.g. an edge relaying many clients' writes). Returns nil for a small body.
    /// - Throws: ``FHIRError`` 429 (this client's cap) or 503 (the node's), with Retry-After.
    package func admit(length: Int?, client: String?) throws(FHIRError) -> Slot? {
        if let length, length < threshold { return nil }
        let refusal = state.withLock { state -> FHIRError? in
            if let client, state.perClient[client, default: 0] >= maxPerClient {
                return FHIRError(
                    status: 429, code: "throttled",
                    "Too many large requests from this client at once (at most \(maxPerClient)); retry shortly")
            }
            if state.inFlight >= maxPerNode {
                return FHIRError(
                    status: 503, code: "transient", "Too many large requests at once on this node (at most \(maxPerNode)); retry shortly")
            }
            state.inFlight += 1
            if let client { state.perClient[client, default: 0] += 1 }
            return nil
        }
        if var refusal {
            refusal.headers.append(("Retry-After", "1"))
            throw refusal
        }
        return Slot(gate: self, client: client)
    }

    /// Large requests in flight now.
    package var inFlight: Int { state.withLock { $0.inFlight } }

    private func release(client: String?) {
        let idle = state.withLock { state -> Bool in
            state.inFlight -= 1
            if let client {
                let left = state.perClient[client, default: 1] - 1
                state.perClient[client] = left > 0 ? left : nil
            }
            return state.inFlight == 0
        }
        // After the answer is written (its body and TLS buffers are freed then), and again later
        // for buffers freed late (a loaded machine), each time only if still idle.
        if idle {
            Task {
                for delay in [250, 1000, 3000] {
                    try? await Task.sleep(for: .milliseconds(delay))
                    guard self.inFlight == 0 else { return }
                    Allocator.trimHeap()
                }
            }
        }
    }
}
