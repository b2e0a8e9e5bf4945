import Foundation

/// Resident memory of a process, from `/proc/PID/status` (Linux).
struct ProcessMemory {
    let pid: Int32

    /// A field of `/proc/PID/status` in MiB (`VmRSS`: now, `VmHWM`: the peak).
    func mebibytes(_ field: String) -> Double {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kib / 1024
        }
        return 0
    }

    var rss: Double { mebibytes("VmRSS") }
    var peak: Double { mebibytes("VmHWM") }

    /// Resets the peak (`VmHWM`) to the current RSS (`echo 5 > /proc/PID/clear_refs`).
    func resetPeak() {
        try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
    }
}

extension NodeProcess {
    var memory: ProcessMemory { ProcessMemory(pid: process?.processIdentifier ?? 0) }
}

/// `count` random bytes as base64 (incompressible text for large test resources).
func randomText(bytes count: Int) -> String {
    let handle = FileHandle(forReadingAtPath: "/dev/urandom")!
    defer { try? handle.close() }
    return handle.readData(ofLength: count).base64EncodedString()
}
