/// How far a snapshot bootstrap has come: resources received of the total the origin announced
/// (`total` is nil from an origin that does not announce it), with rate and time left.
///
/// ```swift
/// var progress = BootstrapProgress(startedAt: 0, total: 48_000)
/// progress.received = 12_000
/// progress.describe(now: 4_000)  // "12,000 of 48,000 resources (25%), 3,000/s, about 12 s left"
/// ```
package struct BootstrapProgress: Sendable, Equatable {
    /// When it started (milliseconds, the link's monotonic clock).
    package var startedAt: Int64
    package var total: Int64?
    package var received: Int64 = 0

    package init(startedAt: Int64, total: Int64?) {
        self.startedAt = startedAt
        self.total = total
    }

    /// Received out of total, 0...1 (nil without a total).
    package var fraction: Double? {
        guard let total else { return nil }
        return total == 0 ? 1 : min(1, Double(received) / Double(total))
    }

    /// Resources per second so far (nil in the first 100 ms).
    package func rate(now: Int64) -> Double? {
        let elapsed = now - startedAt
        return elapsed >= 100 ? Double(received) * 1000 / Double(elapsed) : nil
    }

    /// Seconds left at the rate so far (nil without a total or a rate).
    package func secondsLeft(now: Int64) -> Double? {
        guard let total, let rate = rate(now: now), rate > 0 else { return nil }
        return Double(max(0, total - received)) / rate
    }

    /// One plain line for a log or a dashboard.
    package func describe(now: Int64) -> String {
        var text = Self.grouped(received)
        if let total, let fraction {
            text += " of \(Self.grouped(total)) resources (\(Int((fraction * 100).rounded(.down)))%)"
        } else {
            text += " resources"
        }
        if let rate = rate(now: now) { text += ", \(Self.grouped(Int64(rate.rounded())))/s" }
        if let left = secondsLeft(now: now) { text += ", about \(Int64(left.rounded(.up))) s left" }
        return text
    }

    static func grouped(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0, i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }
}

/// The last snapshot bootstrap that finished: how many resources, how long, at which LSN.
package struct BootstrapSummary: Sendable, Equatable {
    package var resources: Int64
    package var milliseconds: Int64
    package var lsn: Int64
    /// When it finished (epoch milliseconds).
    package var finishedAt: Int64

    package init(resources: Int64, milliseconds: Int64, lsn: Int64, finishedAt: Int64) {
        self.resources = resources
        self.milliseconds = milliseconds
        self.lsn = lsn
        self.finishedAt = finishedAt
    }
}
