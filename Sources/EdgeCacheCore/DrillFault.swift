#if canImport(Glibc)
import Glibc
#endif

/// Bugs put in on purpose, to show that the failover drills catch them (`tools/drill --inject`).
/// Read from `EDGECACHE_DRILL_FAULT` (comma-separated), and only in debug builds: a release
/// build has no such switch.
package enum DrillFault: String, Sendable, CaseIterable {
    /// The edge acknowledges a queued write before it is durable (written 300 ms later).
    case ackBeforeDurable = "ack-before-durable"
    /// The edge moves its stream checkpoint in its own transaction before applying the batch.
    case checkpointApart = "checkpoint-apart"

    #if DEBUG
    static let active: Set<DrillFault> = {
        guard let raw = getenv("EDGECACHE_DRILL_FAULT") else { return [] }
        return Set(String(cString: raw).split(separator: ",").compactMap { DrillFault(rawValue: String($0)) })
    }()
    #endif

    /// Whether this fault is switched on (always false in a release build).
    package var isActive: Bool {
        #if DEBUG
        return Self.active.contains(self)
        #else
        return false
        #endif
    }
}
