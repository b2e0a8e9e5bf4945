import Foundation
import Synchronization

/// Progress of long work (warming, re-sealing): on a terminal one line redrawn in place with a
/// bar; otherwise plain log lines, at most one every 2 s (and at the end), so logs stay short.
final class ProgressLine: Sendable {
    let label: String
    let total: Int?
    let terminal: Bool
    private let last = Mutex<(at: ContinuousClock.Instant?, drawn: Bool)>((nil, false))

    init(label: String, total: Int?, terminal: Bool = ProgressLine.isTerminal) {
        self.label = label
        self.total = total
        self.terminal = terminal
    }

    static var isTerminal: Bool { isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb" }

    /// The bar and counts for `done` of `total`.
    func text(_ done: Int, detail: String) -> String {
        guard let total, total > 0 else { return "\(label): \(done) \(detail)" }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        return "\(label): \(bar) \(done)/\(total) \(detail)"
    }

    func update(_ done: Int, detail: String = "", force: Bool = false) {
        let now = ContinuousClock.now
        let every: Duration = terminal ? .milliseconds(100) : .seconds(2)
        let due = last.withLock { state -> Bool in
            if !force, let at = state.at, now - at < every { return false }
            state.at = now
            state.drawn = true
            return true
        }
        guard due else { return }
        if terminal {
            FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + text(done, detail: detail)).utf8))
        } else {
            print(text(done, detail: detail))
        }
    }

    /// Ends the line on a terminal (the caller prints its summary next).
    func finish(_ done: Int, detail: String = "") {
        update(done, detail: detail, force: true)
        if terminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
