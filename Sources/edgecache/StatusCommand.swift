import ArgumentParser
import EdgeCacheCore
import EdgeCacheNode
import Foundation

/// `edgecache status --config FILE`: a terminal dashboard of a running node, read from its
/// `/status` with the node's own certificate (on the node's host).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running node's state: role, link, lag, staleness, outbox, conflicts, certificate expiry.",
        discussion: """
            Reads the node's /status over HTTPS with the node's own certificate, every --interval seconds.
            On a terminal the screen is redrawn; otherwise (or with --once) one block of plain lines is
            printed per reading. --once exits 1 if the node does not answer.
            """)

    @Option(name: .long, help: "The node's YAML config file.") var config: String
    @Option(name: .long, help: "The node's API base URL (default: from <data_dir>/listening.json, on 127.0.0.1).") var url: String?
    @Option(name: .long, help: "Seconds between readings.") var interval: Double = 2
    @Flag(name: .long, help: "Print one reading and exit.") var once = false

    func run() async throws {
        let nodeConfig = try loadConfigOrExit(config)
        guard let base = url ?? Self.localURL(nodeConfig) else {
            FileHandle.standardError.write(
                Data("edgecache status: \(nodeConfig.dataDir)/listening.json not found: is the node running? (or pass --url)\n".utf8))
            throw ExitCode(1)
        }
        var clientConfig = nodeConfig
        clientConfig.originURL = base
        clientConfig.originRequestTimeoutMilliseconds = 3000
        let client: OriginClient
        do {
            client = try OriginClient(config: clientConfig, peer: .ownNode(nodeConfig))
        } catch {
            FileHandle.standardError.write(
                Data(
                    ("edgecache status: the node's own certificate and key cannot be used to read its status: \(error)\n"
                        + "(a running node keeps serving with the files it loaded last; see its log and /metrics "
                        + "edgecache_certificate_reload_pending)\n").utf8))
            throw ExitCode(1)
        }
        defer { Task { await client.shutdown() } }
        let terminal = isatty(STDOUT_FILENO) == 1 && !once
        var board = Dashboard(nodeConfig: nodeConfig, color: terminal)
        while true {
            var reading: Dashboard.Reading?
            if let reply = try? await client.get("/status"), reply.status == 200 {
                reading =
                    nodeConfig.role == .edge
                    ? Contract.decode(EdgeStatus.self, from: reply.body).map { .edge($0) }
                    : Contract.decode(OriginStatus.self, from: reply.body).map { .origin($0) }
            }
            let lines = board.render(reading, at: Date())
            if terminal {
                print("\u{1B}[H\u{1B}[2J" + lines.joined(separator: "\n"))
            } else {
                print(lines.joined(separator: "\n") + "\n")
            }
            fflushStandardOutput()
            if once {
                await client.shutdown()
                if reading == nil { throw ExitCode(1) }
                return
            }
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
    }

    /// `https://HOST:PORT` of the node's API listener from `<data_dir>/listening.json`.
    static func localURL(_ config: NodeConfig) -> String? {
        guard let port = ListeningFile.read(dataDir: config.dataDir)?.ports["api"] else { return nil }
        let host = ["0.0.0.0", "::", "[::]", ""].contains(config.apiAddress.host) ? "127.0.0.1" : config.apiAddress.host
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}

func fflushStandardOutput() {
    try? FileHandle.standardOutput.synchronize()
}

/// Renders readings of `/status`, remembering earlier ones for rates (outbox drain, lag).
struct Dashboard {
    let nodeConfig: NodeConfig
    let color: Bool
    var previous: (at: Date, queued: Int64, applied: Int64, bootstrapping: Bool)?
    var drainStart: Int64?

    /// A `/status` reading, in the role's own contract.
    enum Reading {
        case edge(EdgeStatus)
        case origin(OriginStatus)

        var tls: TLSStatus {
            switch self {
            case .edge(let status): status.tls
            case .origin(let status): status.tls
            }
        }
    }

    init(nodeConfig: NodeConfig, color: Bool) {
        self.nodeConfig = nodeConfig
        self.color = color
    }

    func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    func red(_ t: String) -> String { paint(t, "1;31") }
    func green(_ t: String) -> String { paint(t, "1;32") }
    func yellow(_ t: String) -> String { paint(t, "1;33") }

    static func grouped(_ n: Int64) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0, i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }

    static func duration(ms: Int64) -> String {
        let s = Double(ms) / 1000
        if s < 60 { return String(format: "%.1f s", s) }
        if s < 3600 { return String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60) }
        return String(format: "%d h %02d min", Int(s) / 3600, (Int(s) % 3600) / 60)
    }

    static func bar(_ fraction: Double, width: Int = 30) -> String {
        let filled = max(0, min(width, Int((fraction * Double(width)).rounded())))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    /// The certificate in use (from `/status`), or the files' when the node does not answer.
    func certificateLines(_ tls: TLSStatus?, _ now: Date) -> [String] {
        func days(_ seconds: Double?) -> String {
            guard let seconds else { return "unreadable" }
            let d = Int((seconds / 86_400).rounded(.down))
            let text = seconds < 0 ? "EXPIRED" : "\(d) days"
            return seconds < 21 * 86_400 ? red(text) : text
        }
        guard let tls, tls.certificateNotAfter > 0 else {
            return [
                "certificate  node expires in \(days(NodeMetrics.secondsToExpiry(nodeConfig.certFile, now: now))), "
                    + "CA in \(days(NodeMetrics.secondsToExpiry(nodeConfig.caFile, now: now))) (files)"
            ]
        }
        let left = Double(tls.certificateNotAfter) - now.timeIntervalSince1970
        let caLeft = Double(tls.caNotAfter) - now.timeIntervalSince1970
        let serial = tls.certificateSerial
        var lines = ["certificate  node expires in \(days(left)), CA in \(days(caLeft)) (serial \(serial.prefix(16)))"]
        let onDisk = NodeMetrics.serialNumber(ofFile: nodeConfig.certFile)
        var reload = "reloads      \(tls.reloads) ok, \(tls.reloadsFailed) refused"
        if let result = tls.lastReloadResult, let at = tls.lastReloadAt {
            let when = Date(timeIntervalSince1970: Double(at) / 1000).formatted(.iso8601.time(includingFractionalSeconds: false))
            reload += ", last at \(when): " + (result == "ok" ? "ok" : red(String(result.prefix(160))))
        }
        lines.append(reload)
        if let onDisk, onDisk != serial {
            lines.append("             " + yellow("tls.cert on disk is not the certificate in use: send SIGHUP to load it"))
        }
        return lines
    }

    /// A snapshot bootstrap under way, with a bar when the origin announced its size.
    func bootstrapLine(_ bootstrap: BootstrapStatus) -> String? {
        guard let running = bootstrap.running else { return nil }
        let received = running.received
        var line = "bootstrap    "
        if let total = running.total {
            line +=
                "\(Self.bar(total == 0 ? 1 : Double(received) / Double(total))) \(Self.grouped(received))/\(Self.grouped(total)) resources"
        } else {
            line += "\(Self.grouped(received)) resources"
        }
        if let rate = running.ratePerSecond { line += ", \(Self.grouped(rate))/s" }
        if let left = running.secondsLeft { line += ", about \(left) s left" }
        return yellow(line)
    }

    mutating func render(_ reading: Reading?, at now: Date) -> [String] {
        let stamp = now.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
        let role = nodeConfig.role.rawValue
        var lines = ["EdgeCache \(role)  \(nodeConfig.nodeID)" + (nodeConfig.tenant.map { "  tenant \($0)" } ?? "") + "   \(stamp)"]
        switch reading {
        case nil:
            lines.append("node         " + red("NOT ANSWERING") + " (is it running? see its log)")
            lines += certificateLines(nil, now)
            return lines
        case .origin(let r):
            lines.append("head LSN     \(Self.grouped(r.headLSN))")
            lines.append("policy       \(r.policyVersion) (\(r.policySource))")
            lines += certificateLines(r.tls, now)
            return lines
        case .edge(let r):
            return lines + render(edge: r, at: now)
        }
    }

    private mutating func render(edge r: EdgeStatus, at now: Date) -> [String] {
        var lines: [String] = []
        let link = r.link
        lines.append("link         " + (link == "live" ? green("LIVE") : red("DOWN") + " (\(link))"))
        let applied = r.appliedLSN
        let head = r.originHeadLSN
        let lag = max(0, head - applied)
        var lagLine =
            "stream       applied LSN \(Self.grouped(applied)), origin head \(Self.grouped(head)), lag \(Self.grouped(lag)) changes"
        if let p = previous, now > p.at, !p.bootstrapping {
            let rate = Double(applied - p.applied) / now.timeIntervalSince(p.at)
            if rate > 0 { lagLine += String(format: ", applying %.0f/s", rate) }
        }
        lines.append(lagLine)
        if let bootstrap = bootstrapLine(r.bootstrap) { lines.append(bootstrap) }
        if let staleness = r.stalenessMilliseconds {
            lines.append(
                "staleness    " + (staleness == 0 ? green("0 (caught up)") : yellow(Self.duration(ms: staleness)) + " since last caught up")
            )
        } else {
            lines.append("staleness    unknown (never caught up)")
        }
        let queued = r.outboxQueued
        let review = r.outboxReview
        var outbox = "outbox       queued \(Self.grouped(queued))"
        if let oldest = r.outboxOldestQueuedMilliseconds { outbox += " (oldest \(Self.duration(ms: oldest)))" }
        outbox += ", done \(Self.grouped(r.outboxDone))"
        lines.append(queued > 0 ? yellow(outbox) : outbox)
        // Drain progress: from the largest queue seen since it last was empty, down to 0.
        if queued == 0 {
            drainStart = nil
        } else if queued > (drainStart ?? 0) {
            drainStart = queued
        }
        // While the origin answers (live, or catching up with the stream that echoes the writes back).
        if let start = drainStart, let p = previous, p.queued > queued, link != "origin-unreachable" {
            let rate = Double(p.queued - queued) / max(0.001, now.timeIntervalSince(p.at))
            let left = Double(queued) / max(rate, 0.001)
            lines.append(
                "drain        \(Self.bar(Double(start - queued) / Double(max(start, 1)))) \(Self.grouped(start - queued))/\(Self.grouped(start))"
                    + String(format: ", %.0f writes/s, about %.0f s left", rate, left))
        }
        lines.append("conflicts    " + (review > 0 ? red("\(review) in review") + " (edgecache conflicts list)" : "0 in review"))
        let consent = r.consent
        lines.append(
            "consent      blocks \(consent.blocks), purged \(consent.purgedEntries), "
                + "propagation p99 \(consent.propagationP99Milliseconds.map { "\($0) ms" } ?? "-")")
        lines.append("cache        \(Self.grouped(r.cachedEntries ?? 0)) entries")
        lines.append("policy       \(r.policyVersion) (\(r.policySource))")
        lines += certificateLines(r.tls, now)
        let converged = link == "live" && lag == 0 && queued == 0
        lines.append("state        " + (converged ? green("CONVERGED: live, nothing to apply, nothing queued") : yellow("not converged")))
        previous = (now, queued, applied, link == "bootstrapping")
        return lines
    }
}
