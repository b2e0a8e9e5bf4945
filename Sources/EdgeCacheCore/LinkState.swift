/// What an edge knows about its link to the origin, and the staleness that follows.
///
/// An edge that follows a live stream knows its staleness exactly: the time since it was last
/// caught up with the origin's head (heartbeats carry the head LSN).
package struct LinkState: Sendable, Equatable {
    /// Whether the stream is connected and heartbeats are arriving.
    package private(set) var connected = false
    /// Head LSN from the last heartbeat.
    package private(set) var originHead: Int64 = 0
    /// Last applied LSN.
    package private(set) var applied: Int64
    /// When a heartbeat last arrived (local monotonic-ish epoch ms).
    package private(set) var lastHeartbeatAt: Int64?
    /// When the edge was last known to hold everything up to the origin's head.
    package private(set) var caughtUpAt: Int64?
    /// How long without a heartbeat before the link counts as down.
    package let heartbeatTimeoutMilliseconds: Int64

    /// - Parameter caughtUpAt: when the edge was last caught up (same clock as `now` later),
    ///   restored from disk after a restart; nil if never.
    package init(applied: Int64, heartbeatTimeoutMilliseconds: Int64 = 3000, caughtUpAt: Int64? = nil) {
        self.applied = applied
        self.heartbeatTimeoutMilliseconds = heartbeatTimeoutMilliseconds
        self.caughtUpAt = caughtUpAt
    }

    package mutating func heartbeat(head: Int64, at now: Int64) {
        connected = true
        originHead = max(originHead, head)
        lastHeartbeatAt = now
        if applied >= head { caughtUpAt = now }
    }

    package mutating func applied(upTo lsn: Int64, at now: Int64) {
        applied = max(applied, lsn)
        if connected, applied >= originHead { caughtUpAt = now }
    }

    package mutating func disconnected() {
        connected = false
    }

    /// The origin's log has a new epoch: its LSNs start again, so the head and the applied LSN
    /// heard so far mean nothing any more (the bootstrap that follows sets them again).
    package mutating func epochChanged() {
        connected = false
        originHead = 0
        applied = 0
    }

    /// Whether the stream is connected and its last heartbeat is within the timeout.
    package func heartbeatsCurrent(at now: Int64) -> Bool {
        guard connected, let last = lastHeartbeatAt else { return false }
        return now - last <= heartbeatTimeoutMilliseconds
    }

    /// Whether heartbeats are current and nothing is known to be missing.
    package func isLive(at now: Int64) -> Bool {
        guard connected, let last = lastHeartbeatAt, now - last <= heartbeatTimeoutMilliseconds else { return false }
        return applied >= originHead
    }

    /// Milliseconds since the edge was last caught up: 0 while live; nil if it never was.
    package func staleness(at now: Int64) -> Int64? {
        if isLive(at: now) { return 0 }
        guard let caughtUpAt else { return nil }
        return max(0, now - caughtUpAt)
    }
}
