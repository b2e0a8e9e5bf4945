#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The time source of a node: wall-clock epoch milliseconds (``MonotonicClock`` also fits it,
/// for intervals). A seam so tests can move time.
package protocol WallClock: Sendable {
    func nowMillis() -> Int64
}

/// The system clock (`CLOCK_REALTIME`).
package struct SystemWallClock: WallClock {
    package init() {}
    package func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A monotonic clock in milliseconds (`CLOCK_MONOTONIC`), for staleness and timeouts: it does
/// not jump when the wall clock is changed, so nothing depends on clocks agreeing.
package struct MonotonicClock: WallClock {
    package init() {}
    package func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
