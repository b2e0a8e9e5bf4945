/// The edge's follower of the origin's change stream, as a pure state machine.
///
/// The I/O shell (``EdgeCacheNode``'s `StreamFollower`) feeds it events and performs the action
/// each returns. Backoff is exponential with full jitter; the random source is injected.
package struct StreamCursor: Sendable {
    package enum State: Sendable, Equatable {
        case idle
        case connecting(since: Int64)
        case streaming(since: Int64)
        case backingOff(attempt: Int)
        case bootstrapping
    }

    package enum Action: Sendable, Equatable {
        /// Open `GET /replication/v1/changes?since=`.
        case connect(since: Int64)
        /// Sleep, then call ``retry()``.
        case wait(milliseconds: Int)
        /// Fetch `GET /replication/v1/snapshot` and replace the store with it.
        case bootstrap
    }

    package private(set) var state: State = .idle
    /// The last LSN applied and checkpointed.
    package private(set) var checkpoint: Int64
    private var failures = 0
    package let baseDelayMilliseconds: Int
    package let maxDelayMilliseconds: Int

    package init(checkpoint: Int64, baseDelayMilliseconds: Int = 100, maxDelayMilliseconds: Int = 5000) {
        self.checkpoint = checkpoint
        self.baseDelayMilliseconds = baseDelayMilliseconds
        self.maxDelayMilliseconds = maxDelayMilliseconds
    }

    /// Begin following.
    package mutating func start() -> Action {
        state = .connecting(since: checkpoint)
        return .connect(since: checkpoint)
    }

    /// The stream answered 200 and is delivering.
    package mutating func connected() {
        state = .streaming(since: checkpoint)
    }

    /// A batch up to `lsn` was applied and checkpointed. Resets the failure count.
    package mutating func applied(upTo lsn: Int64) {
        checkpoint = max(checkpoint, lsn)
        failures = 0
        state = .streaming(since: checkpoint)
    }

    /// A heartbeat arrived: the link is healthy even when nothing changes.
    package mutating func heartbeat() {
        failures = 0
    }

    /// The stream ended or failed (network, 5xx, timeout, bad frame).
    package mutating func failed(random: Double) -> Action {
        failures += 1
        state = .backingOff(attempt: failures)
        let exponent = min(failures - 1, 16)
        let ceiling = min(maxDelayMilliseconds, baseDelayMilliseconds << exponent)
        let delay = max(1, Int(Double(ceiling) * (0.5 + 0.5 * min(max(random, 0), 1))))
        return .wait(milliseconds: delay)
    }

    /// The origin no longer holds the log from our checkpoint (HTTP 410).
    package mutating func gone() -> Action {
        state = .bootstrapping
        return .bootstrap
    }

    /// The origin's log has a new epoch (restored from a copy, or failed over with lost
    /// commits): the checkpoint means nothing there, so bootstrap.
    package mutating func epochChanged() -> Action {
        checkpoint = 0
        state = .bootstrapping
        return .bootstrap
    }

    /// A snapshot at `lsn` replaced the store.
    package mutating func bootstrapped(at lsn: Int64) -> Action {
        checkpoint = lsn
        failures = 0
        state = .connecting(since: lsn)
        return .connect(since: lsn)
    }

    /// The backoff elapsed.
    package mutating func retry() -> Action {
        state = .connecting(since: checkpoint)
        return .connect(since: checkpoint)
    }
}
