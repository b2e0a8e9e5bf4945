import ArgumentParser
import EdgeCacheCrypto
import EdgeCacheNode
import Foundation
import Logging

@main
struct EdgeCacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgecache",
        abstract: "A FHIR R4 edge cache for hospitals and the cloud origin it follows.",
        subcommands: [
            Serve.self, Demo.self, Status.self, Keys.self, ConfigCommand.self, Outbox.self, Conflicts.self, Audit.self, Warm.self,
            Restore.self,
        ])
}

/// Sets up logging to standard error at `level`.
/// - Parameter format: `text` (one line per event) or `json` (``JSONLogHandler``).
func bootstrapLogging(level: String, format: String = "text") -> Logger {
    let logLevel = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        if format == "json" { return JSONLogHandler(label: label, level: logLevel) }
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = logLevel
        return handler
    }
    return Logger(label: "edgecache")
}

/// The config at `path`, or exit status 2 after printing the error (file, line, what is wrong).
func loadConfigOrExit(_ path: String) throws -> NodeConfig {
    do {
        return try NodeConfig.load(path: path)
    } catch {
        FileHandle.standardError.write(Data("edgecache: config error: \(error)\n".utf8))
        throw ExitCode(2)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the node described by a config file (origin or edge).")

    @Option(name: .long, help: "The node's YAML config file.")
    var config: String

    func run() async throws {
        umask(0o077)  // SQLite -wal/-shm files and everything else a node writes: owner only.
        // SIGHUP reloads certificates and keys (NodeReloader); until its handler is installed, a
        // SIGHUP must not end the process (its default action).
        signal(SIGHUP, SIG_IGN)
        let nodeConfig = try loadConfigOrExit(config)
        var logger = bootstrapLogging(level: nodeConfig.logLevel, format: nodeConfig.logFormat)
        logger[metadataKey: "node"] = "\(nodeConfig.nodeID)"
        let runtime: NodeRuntime
        do {
            runtime = try NodeRuntime(config: nodeConfig, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("edgecache: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        try await runtime.run()
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a throw-away origin and edge on loopback with sample data, and print curl commands.",
        discussion: """
            The printed steps show a write-through, a cached read and a version pushed by the change stream,
            then an outage: `edgecache demo link down` cuts the edge's link to the origin, reads are served
            from the cache and labelled, a write is queued, and `edgecache demo link up` restores the link
            and the edge replays its outbox. --tour runs those steps itself and exits 0 only if every step
            answered as expected.
            """,
        subcommands: [Link.self])

    @Option(name: .long, help: "Work folder for the PKI, keys, configs and data (wiped first).")
    var workDir: String = Demo.defaultWorkDir

    @Flag(name: .long, help: "Run the printed steps (outage included) and exit: 0 if every step answered as expected.")
    var tour = false

    static var defaultWorkDir: String { NSTemporaryDirectory() + "edgecache-demo" }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    func run() async throws {
        umask(0o077)
        let logger = bootstrapLogging(level: "warning")
        let passed: Bool
        do {
            passed = try await EdgeCacheNode.Demo.run(workDir: Self.absolute(workDir), tour: tour, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("edgecache demo: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if tour && !passed { throw ExitCode(1) }
    }

    /// `edgecache demo link down|up`: cut or restore the running demo's edge-to-origin link.
    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut (down) or restore (up) the running demo's link between its edge and its origin.",
            discussion: """
                Returns once the edge has noticed: after down, its link is no longer live; after up, it is live again and its outbox is replayed. \
                Name the running demo's folder with --work-dir DIR when it is not the default.
                """)

        enum State: String, ExpressibleByArgument, CaseIterable { case down, up }

        @Argument(help: "down or up") var state: State
        /// `--work-dir` (the running demo's work folder) is the parent command's option: with an
        /// option of the same name here, the parser would hand the value to the parent.
        @ParentCommand var demo: Demo

        func run() async throws {
            do {
                print(try DemoLinkControl.request(up: state == .up, workDir: Demo.absolute(demo.workDir)))
            } catch {
                FileHandle.standardError.write(Data("edgecache demo link: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Configuration tools.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a config file and the files it names.")

        @Option(name: .long, help: "The YAML config file to check.")
        var config: String

        func run() async throws {
            umask(0o077)  // the KEK check opens existing stores read only; SQLite may still make -shm files
            do {
                let nodeConfig = try NodeConfig.load(path: config)
                try nodeConfig.checkFiles()
                for warning in nodeConfig.originHostWarnings() {
                    FileHandle.standardError.write(Data("\(config): warning: \(warning)\n".utf8))
                }
                print("\(config): OK (\(nodeConfig.role.rawValue) \(nodeConfig.nodeID))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}
