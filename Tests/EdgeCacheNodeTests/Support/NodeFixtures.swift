import EdgeCacheCore
import EdgeCacheNode
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Config files for a test origin and edge sharing one PKI.
struct PairConfig {
    let dir: String
    let pki: TestPKI

    /// Writes `origin.yaml`; ports 0 mean "any free port" (read them from listening.json).
    func writeOrigin(name: String = "origin", apiPort: Int = 0, peerPort: Int = 0, extra: String = "") throws -> String {
        try makeKEK("\(dir)/\(name).kek")
        let yaml = """
            role: origin
            node_id: \(name)
            listen: { api: "127.0.0.1:\(apiPort)", peer: "127.0.0.1:\(peerPort)" }
            tls: { cert: \(pki.cert("origin")), key: \(pki.key("origin")), ca: \(pki.ca) }
            data_dir: \(dir)/\(name)-data
            keys: { kek_file: \(name).kek }
            log: { level: warning }
            \(extra)
            """
        let path = "\(dir)/\(name).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func writeEdge(name: String = "edge", tenant: String, originPort: Int, apiPort: Int = 0, extra: String = "") throws -> String {
        if !FileManager.default.fileExists(atPath: "\(dir)/\(name).kek") { try makeKEK("\(dir)/\(name).kek") }
        let yaml = """
            role: edge
            node_id: \(name)
            tenant: \(tenant)
            listen: { api: "127.0.0.1:\(apiPort)" }
            origin: { url: "https://127.0.0.1:\(originPort)", request_timeout_ms: 2000, connect_timeout_ms: 1000 }
            tls: { cert: \(pki.cert("edge-\(tenant)")), key: \(pki.key("edge-\(tenant)")), ca: \(pki.ca) }
            data_dir: \(dir)/\(name)-data
            keys: { kek_file: \(name).kek }
            log: { level: warning }
            \(extra)
            """
        let path = "\(dir)/\(name).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// A node running inside the test process (real TLS, real SQLite), on ephemeral ports.
final class InProcessNode: @unchecked Sendable {
    let runtime: NodeRuntime
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(configPath: String, clock: (any WallClock)? = nil) async throws {
        let config = try NodeConfig.load(path: configPath)
        var logger = Logger(label: "test-\(config.nodeID)")
        logger.logLevel = .warning
        runtime = try NodeRuntime(config: config, logger: logger, clock: clock)
        var configuration = ServiceGroupConfiguration(services: runtime.services.map { .init(service: $0) }, logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        self.group = group
        task = Task { try await group.run() }
        let expected = config.role == .origin ? ["api", "peer"] : ["api"]
        let runtime = self.runtime
        guard try await eventually(10, { expected.allSatisfy { runtime.ports[$0] != nil } }) else {
            throw TestFailure("node \(config.nodeID) did not start listening")
        }
    }

    func port(_ name: String) -> Int { runtime.ports[name]! }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await runtime.shutdown()
    }
}

/// A node running as a real `edgecache serve` process.
final class NodeProcess: @unchecked Sendable {
    let configPath: String
    let dataDir: String
    let logPath: String
    private(set) var process: Process?
    private(set) var ports: [String: Int] = [:]

    static var binary: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edgecache").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return repositoryRoot + "/.build/debug/edgecache"
    }

    init(configPath: String, dataDir: String) {
        self.configPath = configPath
        self.dataDir = dataDir
        self.logPath = configPath + ".log"
    }

    /// Starts the process and waits until every listener is up.
    func start(expectListeners: Int) async throws {
        try? FileManager.default.removeItem(atPath: dataDir + "/listening.json")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--config", configPath]
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let file = dataDir + "/listening.json"
        guard try await eventually(20, { FileManager.default.fileExists(atPath: file) }) else {
            throw TestFailure(
                "\(configPath) did not start: \(String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: logPath))) ?? Data(), as: UTF8.self).suffix(2000))"
            )
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        ports = (try JSONSerialization.jsonObject(with: data) as? [String: Int]) ?? [:]
        guard ports.count == expectListeners else { throw TestFailure("unexpected listening.json: \(ports)") }
    }

    func signal(_ signal: Int32) {
        if let pid = process?.processIdentifier { kill(pid, signal) }
    }

    /// Sends `signal` and waits for the process to exit.
    func stop(_ signal: Int32 = SIGTERM) async {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
        _ = try? await eventually(15) { !process.isRunning }
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
        }
    }
}

/// A TCP port on 127.0.0.1 that is free right now (the kernel's pick).
func freePort() -> Int { Demo.freePort(preferred: 0) }

/// Runs the `edgecache` binary with arguments and returns its exit status and output.
func runCLI(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: NodeProcess.binary)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A clock the test moves by hand (wall and monotonic time of an in-process node).
final class ManualClock: WallClock {
    private let now: Mutex<Int64>

    init(start: Int64 = 1_800_000_000_000) { now = Mutex(start) }

    func nowMillis() -> Int64 { now.withLock { $0 } }

    func advance(seconds: Int) { now.withLock { $0 += Int64(seconds) * 1000 } }
}
