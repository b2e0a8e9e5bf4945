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
            let reading: JSONObject?
            if let reply = try? await client.get("/status"), reply.status == 200,
                case .object(let object)? = try? JSONParser.parse(reply.body)
            {
                reading = object
            } else {
                reading = nil
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
        guard let data = FileManager.default.contents(atPath: config.dataDir + "/listening.json"),
            case .object(let ports)? = try? JSONParser.parse(Array(data)),
            let port = ports["api"]?.stringValue ?? ports["api"].map({ "\($0)" })
        else { return nil }
        let host = ["0.0.0.0", "::", "[::]", ""].contains(config.apiAddress.host) ? "127.0.0.1" : config.apiAddress.host
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port.filter(\.isNumber))"
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

    init(nodeConfig: NodeConfig, color: Bool) {
        self.nodeConfig = nodeConfig
        self.color = color
    }

    func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    func red(_ t: String) -> String { paint(t, "1;31") }
    func green(_ t: String) -> String { paint(t, "1;32") }
    func yellow(_ t: String) -> String { paint(t, "1;33") }

    static func int(_ v: JSONValue?) -> Int64? {
        guard case .number(let text)? = v else { return nil }
        return Int64(text) ?? Double(text).map { Int64($0) }
    }

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
    func certificateLines(_ reading: JSONObject?, _ now: Date) -> [String] {
        func days(_ seconds: Double?) -> String {
            guard let seconds else { return "unreadable" }
            let d = Int((seconds / 86_400).rounded(.down))
            let text = seconds < 0 ? "EXPIRED" : "\(d) days"
            return seconds < 21 * 86_400 ? red(text) : text
        }
        guard case .object(let tls)? = reading?["tls"], let notAfter = Self.int(tls["certificate_not_after"]) else {
            return [
                "certificate  node expires in \(days(NodeMetrics.secondsToExpiry(nodeConfig.certFile, now: now))), "
                    + "CA in \(days(NodeMetrics.secondsToExpiry(nodeConfig.caFile, now: now))) (files)"
            ]
        }
        let left = Double(notAfter) - now.timeIntervalSince1970
        let caLeft = Self.int(tls["ca_not_after"]).map { Double($0) - now.timeIntervalSince1970 }
        let serial = tls["certificate_serial"]?.stringValue ?? "?"
        var lines = ["certificate  node expires in \(days(left)), CA in \(days(caLeft)) (serial \(serial.prefix(16)))"]
        let onDisk = NodeMetrics.serialNumber(ofFile: nodeConfig.certFile)
        var reload = "reloads      \(Self.int(tls["reloads"]) ?? 0) ok, \(Self.int(tls["reloads_failed"]) ?? 0) refused"
        if let result = tls["last_reload_result"]?.stringValue, let at = Self.int(tls["last_reload_at"]) {
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
    func bootstrapLine(_ reading: JSONObject) -> String? {
        guard case .object(let b)? = reading["bootstrap"], b["running"] == .bool(true) else { return nil }
        let received = Self.int(b["received"]) ?? 0
        var line = "bootstrap    "
        if let total = Self.int(b["total"]) {
            line +=
                "\(Self.bar(total == 0 ? 1 : Double(received) / Double(total))) \(Self.grouped(received))/\(Self.grouped(total)) resources"
        } else {
            line += "\(Self.grouped(received)) resources"
        }
        if let rate = Self.int(b["rate_per_s"]) { line += ", \(Self.grouped(rate))/s" }
        if let left = Self.int(b["seconds_left"]) { line += ", about \(left) s left" }
        return yellow(line)
    }

    mutating func render(_ reading: JSONObject?, at now: Date) -> [String] {
        let stamp = now.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
        let role = nodeConfig.role.rawValue
        var lines = ["EdgeCache \(role)  \(nodeConfig.nodeID)" + (nodeConfig.tenant.map { "  tenant \($0)" } ?? "") + "   \(stamp)"]
        guard let r = reading else {
            lines.append("node         " + red("NOT ANSWERING") + " (is it running? see its log)")
            lines += certificateLines(nil, now)
            return lines
        }
        let policy = "policy       \(r["policy_version"]?.stringValue ?? "?") (\(r["policy_source"]?.stringValue ?? "?"))"
        guard role == "edge" else {
            lines.append("head LSN     \(Self.grouped(Self.int(r["head_lsn"]) ?? 0))")
            lines.append(policy)
            lines += certificateLines(r, now)
            return lines
        }
        let link = r["link"]?.stringValue ?? "?"
        lines.append("link         " + (link == "live" ? green("LIVE") : red("DOWN") + " (\(link))"))
        let applied = Self.int(r["applied_lsn"]) ?? 0
        let head = Self.int(r["origin_head_lsn"]) ?? 0
        let lag = max(0, head - applied)
        var lagLine =
            "stream       applied LSN \(Self.grouped(applied)), origin head \(Self.grouped(head)), lag \(Self.grouped(lag)) changes"
        if let p = previous, now > p.at, !p.bootstrapping {
            let rate = Double(applied - p.applied) / now.timeIntervalSince(p.at)
            if rate > 0 { lagLine += String(format: ", applying %.0f/s", rate) }
        }
        lines.append(lagLine)
        if let bootstrap = bootstrapLine(r) { lines.append(bootstrap) }
        if let staleness = Self.int(r["staleness_ms"]) {
            lines.append(
                "staleness    " + (staleness == 0 ? green("0 (caught up)") : yellow(Self.duration(ms: staleness)) + " since last caught up")
            )
        } else {
            lines.append("staleness    unknown (never caught up)")
        }
        let queued = Self.int(r["outbox_queued"]) ?? 0
        let review = Self.int(r["outbox_review"]) ?? 0
        let done = Self.int(r["outbox_done"]) ?? 0
        var outbox = "outbox       queued \(Self.grouped(queued))"
        if let oldest = Self.int(r["outbox_oldest_queued_ms"]) { outbox += " (oldest \(Self.duration(ms: oldest)))" }
        outbox += ", done \(Self.grouped(done))"
        lines.append(queued > 0 ? yellow(outbox) : outbox)
        // Drain progress: from the largest queue seen since it last was empty, down to 0.
        if queued == 0 {
            drainStart = nil
        } else if drainStart == nil || queued > drainStart! {
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
        if case .object(let consent)? = r["consent"] {
            lines.append(
                "consent      blocks \(Self.int(consent["blocks"]) ?? 0), purged \(Self.int(consent["purged_entries"]) ?? 0), "
                    + "propagation p99 \(Self.int(consent["propagation_p99_ms"]).map { "\($0) ms" } ?? "-")")
        }
        lines.append("cache        \(Self.grouped(Self.int(r["cached_entries"]) ?? 0)) entries")
        lines.append(policy)
        lines += certificateLines(r, now)
        let converged = link == "live" && lag == 0 && queued == 0
        lines.append("state        " + (converged ? green("CONVERGED: live, nothing to apply, nothing queued") : yellow("not converged")))
        previous = (now, queued, applied, link == "bootstrapping")
        return lines
    }
}
