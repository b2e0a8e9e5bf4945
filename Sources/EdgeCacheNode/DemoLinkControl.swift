import EdgeCacheStore
import Foundation
import ServiceLifecycle
import Synchronization

/// The demo's link between its edge and its origin, driven from another terminal by
/// `edgecache demo link down|up --work-dir DIR`.
///
/// The command writes the wanted state and a fresh token to `DIR/link.request`; the demo (this
/// service, polling every 100 ms) cuts or restores its ``TCPProxy`` and, once the edge has
/// noticed, writes the token and the outcome to `DIR/link.state`, which the command waits for. "Noticed" means: after `down`, the
/// edge's link is no longer live; after `up`, it is live again and its outbox is empty (the
/// writes queued during the outage have been replayed), so a command pasted next sees the result.
package final class DemoLinkControl: Service, Sendable {
    let workDir: String
    let proxy: TCPProxy
    let edge: EdgeNode
    /// The token of the last request answered.
    private let answered = Mutex<String>("")

    init(workDir: String, proxy: TCPProxy, edge: EdgeNode) {
        self.workDir = workDir
        self.proxy = proxy
        self.edge = edge
        try? Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: workDir + "/demo.pid"))
    }

    static func requestPath(_ workDir: String) -> String { workDir + "/link.request" }
    static func statePath(_ workDir: String) -> String { workDir + "/link.state" }

    package func run() async throws {
        // Returns (never throws) at a graceful shutdown: a service that throws then would cancel
        // the whole group and cut the nodes' own shutdown short.
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            if let data = FileManager.default.contents(atPath: Self.requestPath(workDir)),
                let words = String(data: data, encoding: .utf8)?.split(separator: " ").map(String.init), words.count == 2,
                ["up", "down"].contains(words[0]), words[1] != answered.withLock({ $0 })
            {
                answered.withLock { $0 = words[1] }
                let outcome = await set(up: words[0] == "up")
                Self.writeAtomically(Self.statePath(workDir), "\(words[1]) \(outcome)\n")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Cuts or restores the link and waits (up to 30 s) until the edge has noticed; returns a
    /// line saying what happened.
    func set(up: Bool) async -> String {
        let start = ContinuousClock.now
        let queuedBefore = edge.store.outbox.queuedCount
        if up { proxy.unblock() } else { proxy.block() }
        let deadline = start + .seconds(30)
        while ContinuousClock.now < deadline {
            let live = edge.link.isLive
            let queued = edge.store.outbox.queuedCount
            if up ? (live && queued == 0) : !live { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let elapsed = (ContinuousClock.now - start).components
        let seconds = String(format: "%.1f", Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
        let reason = edge.link.notLiveReason
        if up {
            guard edge.link.isLive, edge.store.outbox.queuedCount == 0 else {
                return
                    "failed: after 30 s the edge is \(edge.link.isLive ? "live" : reason) with \(edge.store.outbox.queuedCount) write(s) still queued"
            }
            return "ok: the edge is live again after \(seconds) s and replayed \(queuedBefore) queued write(s)"
        }
        guard !edge.link.isLive else { return "failed: after 30 s the edge still reports its link live" }
        return "ok: the edge noticed after \(seconds) s (\(reason)); it serves what it has, labelled, and queues writes"
    }

    static func writeAtomically(_ path: String, _ text: String) {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else { return }
        _ = rename(temporary, path)
    }

    /// `edgecache demo link down|up`: asks the demo running in `workDir` to cut or restore its
    /// link and waits for its answer. Returns the demo's line, or throws naming what is wrong.
    package static func request(up: Bool, workDir: String, timeoutSeconds: Double = 40) throws -> String {
        let pidFile = workDir + "/demo.pid"
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            kill(pid, 0) == 0
        else {
            throw Demo.DemoError(
                description: "no demo is running with work folder \(workDir) (start one with: edgecache demo --work-dir \(workDir))")
        }
        let wanted = up ? "up" : "down"
        let token = UUID().uuidString
        writeAtomically(requestPath(workDir), "\(wanted) \(token)")
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let state = try? String(contentsOfFile: statePath(workDir), encoding: .utf8), state.hasPrefix(token + " ") {
                let outcome = String(state.dropFirst(token.count + 1)).trimmingCharacters(in: .whitespacesAndNewlines)
                if outcome.hasPrefix("failed") { throw Demo.DemoError(description: "link \(wanted): \(outcome)") }
                return "link \(wanted.uppercased()): \(outcome.dropFirst(4))"
            }
            usleep(100_000)
        }
        throw Demo.DemoError(description: "the demo in \(workDir) did not answer within \(Int(timeoutSeconds)) s")
    }
}
