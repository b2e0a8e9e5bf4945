import ArgumentParser
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation

/// Opens an edge's store from its config (works whether the node runs or not: SQLite WAL).
func openEdgeStore(_ configPath: String) throws -> EdgeStore {
    let config: NodeConfig
    do {
        config = try NodeConfig.load(path: configPath)
    } catch {
        throw ValidationError("\(error)")
    }
    guard config.role == .edge, let tenant = config.tenant else {
        throw ValidationError("\(configPath) is not an edge config; the outbox and conflicts live at the edge")
    }
    umask(0o077)
    let path = config.dataDir + "/edge.sqlite"
    guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("no edge database at \(path); is data_dir in \(configPath) right?")
    }
    let kek = try KeyEncryptionKey.load(path: config.kekFile)
    return try EdgeStore(path: path, tenant: tenant, kek: kek, clock: SystemWallClock())
}

/// Appends an operator's action to the node's audit trail (the chain continues across
/// processes: the writer reads the head inside its transaction).
func auditOperator(_ configPath: String, action: String, resource: String?, detail: String) {
    guard let config = try? NodeConfig.load(path: configPath), let kek = try? KeyEncryptionKey.load(path: config.kekFile),
        let store = try? AuditStore(path: config.dataDir + "/audit.sqlite", kek: kek, clock: SystemWallClock())
    else {
        FileHandle.standardError.write(Data("warning: the action could not be written to the audit trail\n".utf8))
        return
    }
    let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
    let record = AuditRecord(
        time: SystemWallClock().nowMillis(), action: action, outcome: 200, actor: "operator:\(user)", tenant: config.tenant ?? "none",
        resource: resource, source: detail, policyVersion: DefaultPolicy.version, node: config.nodeID, requestID: "cli")
    do { try store.appendNow([record]) } catch {
        FileHandle.standardError.write(Data("warning: the action could not be written to the audit trail\n".utf8))
    }
}

func describe(_ entry: OutboxEntry) -> String {
    let age = max(0, SystemWallClock().nowMillis() - entry.createdAt) / 1000
    var line = "\(entry.seq)\t\(entry.state.rawValue)\t\(entry.item.method.rawValue) \(entry.item.type)/\(entry.item.id)"
    line += "\tbase=\(entry.item.ifMatch.map(String.init) ?? "-")\tattempts=\(entry.attempts)\tage=\(age)s"
    if let reason = entry.reviewReason { line += "\treason=\(reason)" }
    if let error = entry.lastError { line += "\tlast_error=\(error)" }
    return line
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage an edge's queued writes (running or stopped node).",
        subcommands: [List.self, Retry.self, Discard.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queued and review entries (all with --all).")
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Flag(name: .long, help: "Also list done and discarded entries.") var all = false

        func run() async throws {
            let store = try openEdgeStore(config)
            let states: Set<OutboxState> = all ? Set(OutboxState.allCases) : [.queued, .review]
            let entries = try await store.outbox.list(states: states, limit: 100_000)
            let counts = try await store.outbox.counts()
            print(
                "queued=\(counts[.queued] ?? 0) review=\(counts[.review] ?? 0) done=\(counts[.done] ?? 0) discarded=\(counts[.discarded] ?? 0)"
            )
            for entry in entries { print(describe(entry)) }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put an entry in review back in the queue.")
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Argument(help: "The entry's sequence number.") var seq: Int64

        func run() async throws {
            guard try await openEdgeStore(config).outbox.retry(seq: seq) else {
                throw ValidationError("entry \(seq) is not in review")
            }
            auditOperator(config, action: "outbox-retry", resource: nil, detail: "entry \(seq)")
            print("entry \(seq) queued again")
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop a queued or review entry (it will not reach the origin).")
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Argument(help: "The entry's sequence number.") var seq: Int64

        func run() async throws {
            guard try await openEdgeStore(config).outbox.discard(seq: seq) else {
                throw ValidationError("entry \(seq) is not queued or in review")
            }
            auditOperator(config, action: "outbox-discard", resource: nil, detail: "entry \(seq)")
            print("entry \(seq) discarded")
        }
    }
}

struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Review writes whose base version changed at the origin (running or stopped node).",
        subcommands: [List.self, Show.self, Resolve.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List unresolved conflicts (all with --all).")
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Flag(name: .long, help: "Include resolved conflicts.") var all = false

        func run() async throws {
            let conflicts = try await openEdgeStore(config).outbox.conflicts(includeResolved: all)
            print("\(conflicts.count) conflict(s)")
            for c in conflicts {
                print(
                    "\(c.seq)\t\(c.entry.item.method.rawValue) \(c.entry.item.type)/\(c.entry.item.id)\tedge_base=\(c.entry.item.ifMatch.map(String.init) ?? "-")"
                        + "\torigin_version=\(c.originVersion.map { String($0.version) } ?? "deleted")\t\(c.resolution ?? "unresolved")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show both versions of a conflict.")
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Argument(help: "The conflict's sequence number.") var seq: Int64

        func run() async throws {
            guard let c = try await openEdgeStore(config).outbox.conflicts(includeResolved: true).first(where: { $0.seq == seq }) else {
                throw ValidationError("no conflict \(seq)")
            }
            print("conflict \(c.seq): \(c.entry.item.type)/\(c.entry.item.id) (\(c.resolution ?? "unresolved"))")
            print("edge write (based on version \(c.entry.item.ifMatch.map(String.init) ?? "-")):")
            print(String(decoding: c.entry.item.resource, as: UTF8.self))
            print("origin version \(c.originVersion.map { String($0.version) } ?? "none (deleted)"):")
            print(c.originVersion.map { String(decoding: $0.json, as: UTF8.self) } ?? "-")
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Settle a conflict by keeping the origin's or the edge's version.")
        enum Side: String, ExpressibleByArgument { case origin, edge }
        @Option(name: .long, help: "The edge's config file.") var config: String
        @Option(name: .long, help: "origin: drop the edge's write; edge: replay it over the origin's version.") var keep: Side
        @Argument(help: "The conflict's sequence number.") var seq: Int64

        func run() async throws {
            let store = try openEdgeStore(config)
            let conflict = try await store.outbox.conflicts(includeResolved: false).first { $0.seq == seq }
            guard try await store.outbox.resolve(seq: seq, keepEdge: keep == .edge) else {
                throw ValidationError("no unresolved conflict \(seq)")
            }
            auditOperator(
                config, action: "conflict-resolve", resource: conflict.map { "\($0.entry.item.type)/\($0.entry.item.id)" },
                detail: "conflict \(seq): keep \(keep.rawValue)")
            print(
                keep == .edge
                    ? "conflict \(seq): the edge's write is queued again over the origin's version"
                    : "conflict \(seq): kept the origin's version; the edge's write is discarded")
        }
    }
}
