import EdgeCacheCore
import Synchronization

/// The edge's shared view of its link to the origin (thread-safe wrapper of ``LinkState``),
/// on the monotonic clock so staleness never depends on wall clocks agreeing.
package final class EdgeLink: Sendable {
    private let state: Mutex<LinkState>
    private let bootstrap = Mutex<(running: BootstrapProgress?, last: BootstrapSummary?)>((nil, nil))
    let clock: any WallClock

    /// - Parameter caughtUpWallClock: the persisted wall-clock time the edge was last caught up
    ///   (0 if never), converted once to the monotonic clock.
    /// - Parameter clock: monotonic in production; tests pass the node's injected clock.
    package init(
        applied: Int64, heartbeatTimeoutMilliseconds: Int64, caughtUpWallClock: Int64 = 0, wallNow: Int64 = 0,
        clock: any WallClock
    ) {
        self.clock = clock
        var restored: Int64?
        if caughtUpWallClock > 0 {
            restored = clock.nowMillis() - max(0, wallNow - caughtUpWallClock)
        }
        state = Mutex(
            LinkState(applied: applied, heartbeatTimeoutMilliseconds: heartbeatTimeoutMilliseconds, caughtUpAt: restored))
    }

    /// Whether the edge was caught up at least once (in this run or a previous one).
    package var everCaughtUp: Bool { snapshot.caughtUpAt != nil }

    package func heartbeat(head: Int64) {
        let now = clock.nowMillis()
        state.withLock { $0.heartbeat(head: head, at: now) }
    }

    package func applied(upTo lsn: Int64) {
        let now = clock.nowMillis()
        state.withLock { $0.applied(upTo: lsn, at: now) }
    }

    package func disconnected() { state.withLock { $0.disconnected() } }

    /// The origin's log epoch changed: forget its head and the applied LSN (``LinkState/epochChanged()``).
    package func epochChanged() { state.withLock { $0.epochChanged() } }

    /// A snapshot bootstrap began (its total not known yet).
    package func bootstrapStarted() {
        let now = clock.nowMillis()
        bootstrap.withLock { $0.running = BootstrapProgress(startedAt: now, total: nil) }
    }

    /// The snapshot announced how many resources it holds.
    package func bootstrapTotal(_ total: Int64?) { bootstrap.withLock { $0.running?.total = total } }

    /// Resources received so far; returns the progress.
    @discardableResult
    package func bootstrapReceived(_ received: Int64) -> BootstrapProgress? {
        bootstrap.withLock {
            $0.running?.received = received
            return $0.running
        }
    }

    /// The bootstrap ended: with a summary when it was swapped in, nil when it failed.
    package func bootstrapEnded(lsn: Int64?, wallNow: Int64) {
        let now = clock.nowMillis()
        bootstrap.withLock {
            if let lsn, let running = $0.running {
                $0.last = BootstrapSummary(
                    resources: running.received, milliseconds: now - running.startedAt, lsn: lsn, finishedAt: wallNow)
            }
            $0.running = nil
        }
    }

    package var isBootstrapping: Bool { bootstrap.withLock { $0.running != nil } }
    /// The bootstrap under way, if any, and the last one that finished.
    package var bootstrapState: (running: BootstrapProgress?, last: BootstrapSummary?) { bootstrap.withLock { $0 } }

    package var snapshot: LinkState { state.withLock { $0 } }

    /// Whether the edge is live (heartbeats current and nothing missing).
    package var isLive: Bool {
        let now = clock.nowMillis()
        return state.withLock { $0.isLive(at: now) }
    }

    /// Milliseconds since last caught up (0 while live; nil if never).
    package var stalenessMilliseconds: Int64? {
        let now = clock.nowMillis()
        return state.withLock { $0.staleness(at: now) }
    }

    /// Why the edge is not live, for `Cache-Status` details.
    package var notLiveReason: String {
        if isBootstrapping { return "bootstrapping" }
        let now = clock.nowMillis()
        return state.withLock { $0.heartbeatsCurrent(at: now) } ? "catching-up" : "origin-unreachable"
    }
}
