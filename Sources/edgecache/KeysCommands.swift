import ArgumentParser
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Synchronization

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Key management: make a KEK, rotate data keys or the KEK, crypto-shred a tenant.",
        subcommands: [Init.self, Rotate.self, RotateKEK.self, Shred.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new key-encryption key (32 random bytes, base64, mode 0600).")

        @Option(name: .long, help: "Where to write the key; an existing file is never overwritten.")
        var kekFile: String

        func run() async throws {
            do {
                try KeyEncryptionKey.generate().write(toNewFile: kekFile)
                print("wrote a new key-encryption key to \(kekFile) (mode 0600); back it up: without it the data is unreadable")
            } catch {
                FileHandle.standardError.write(Data("edgecache keys init: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new data key version current, re-seal every entry under it, retire the old versions.",
            discussion: """
                Works on a running or stopped node (same data_dir). Without --tenant: every tenant of the \
                node and its audit trail (tenant _audit). Re-sealing runs here, in short batches, with \
                progress lines; the node keeps serving and seals new writes under the new version from \
                its next write.
                """)
        @Option(name: .long, help: "The node's config file.") var config: String
        @Option(name: .long, help: "Only this tenant (on an edge: its own tenant, or _audit).") var tenant: String?
        @Option(name: .long, help: "Entries re-sealed per write transaction.") var batchSize = 256
        @Flag(name: .long, help: "Keep the old key versions (default: retire them once no entry uses them).")
        var keepOld = false

        func run() async throws {
            let node = try KeyCommandContext(configPath: config)
            for target in try await node.targets(tenant: tenant) {
                let started = ContinuousClock.now
                let version = try await target.maintenance.rotate(tenant: target.tenant)
                print("\(target.label): data key v\(version) is now current for new writes")
                let total = try await target.maintenance.versionsInUse(tenant: target.tenant).values.reduce(0, +)
                let line = ProgressLine(label: "\(target.label): re-sealing", total: total)
                let done = try await target.maintenance.reseal(tenant: target.tenant, batchSize: batchSize) { progress in
                    line.update(progress.resealed, detail: "re-sealed (\(progress.scanned) looked at)")
                }
                line.finish(done.resealed, detail: "re-sealed (\(done.scanned) looked at)")
                let seconds =
                    Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                    + Double((ContinuousClock.now - started).components.seconds)
                let rate = seconds > 0 ? Int(Double(done.resealed) / seconds) : done.resealed
                print(
                    "\(target.label): re-sealed \(done.resealed) entries to v\(version) in "
                        + String(format: "%.2f s (%d entries/s; %d looked at)", seconds, rate, done.scanned))
                if !keepOld {
                    let retired = try await target.maintenance.retireUnused(tenant: target.tenant)
                    let left = try await target.maintenance.versionsInUse(tenant: target.tenant).filter { $0.key != version }
                    if !retired.isEmpty {
                        print("\(target.label): retired data key version(s) \(retired.map { "v\($0)" }.joined(separator: ", "))")
                    }
                    if !left.isEmpty { print("\(target.label): old versions still in use, kept: \(left)") }
                }
                try await node.audit(.rotate, tenant: target.tenant, keyVersion: Int64(version))
            }
        }
    }

    struct RotateKEK: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-kek",
            abstract: "Re-wrap every data key under a new key-encryption key (the data itself is not touched).",
            discussion: """
                Procedure: edgecache keys init --kek-file NEW; edgecache keys rotate-kek --config FILE \
                --new-kek-file NEW; set keys.kek_file to NEW in the config; restart the node; then destroy \
                the old KEK. A node still running on the old KEK keeps the keys it holds in memory, but \
                cannot load a key version made after this command: restart it before the next rotation.
                """)
        @Option(name: .long, help: "The node's config file (its keys.kek_file is the current KEK).") var config: String
        @Option(name: .long, help: "The new KEK (made with: edgecache keys init --kek-file PATH).") var newKekFile: String

        func run() async throws {
            let node = try KeyCommandContext(configPath: config, openStores: false)
            let new = try KeyEncryptionKey.load(path: newKekFile)
            for path in node.files {
                let count = try KeyMaintenance.rewrapKeys(path: path, from: node.kek, to: new)
                print("\(path): \(count) data key row(s) re-wrapped under \(newKekFile)")
            }
            let audit = try AuditStore(path: node.config.dataDir + "/audit.sqlite", kek: new, clock: SystemWallClock())
            try await audit.append([
                .keyOperation(
                    .rotateKEK, tenant: node.config.tenant ?? "*", actor: KeyCommandContext.actor, node: node.config.nodeID,
                    time: SystemWallClock().nowMillis())
            ])
            print("done: set keys.kek_file to \(newKekFile) in \(config) and restart the node; the old KEK no longer opens this data_dir")
        }
    }

    struct Shred: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Crypto-shred a tenant: destroy its data keys and remove its entries, for good.",
            discussion: """
                On the origin: that tenant's keys, resources, history, index terms, change log and \
                idempotency records. On an edge: its own tenant only (cache, outbox, conflicts); the \
                edge will not start again on this data_dir. Freed pages are zeroed (secure_delete) \
                and the WAL is truncated. A running node answers the tenant's reads with 404/410 \
                OperationOutcomes from then on. The audit trail is kept.
                """)
        @Option(name: .long, help: "The node's config file.") var config: String
        @Option(name: .long, help: "The tenant to shred.") var tenant: String
        @Flag(name: .long, help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            let node = try KeyCommandContext(configPath: config)
            guard tenant != "_audit" else { throw ValidationError("the audit trail is not shredded") }
            if node.config.role == .edge, tenant != node.config.tenant {
                throw ValidationError(
                    "this edge holds tenant \(node.config.tenant ?? "?"), not \(tenant); shred \(tenant) at the origin")
            }
            guard let store = node.store, try await store.tenants().contains(tenant) else {
                throw ValidationError("no data keys of tenant \(tenant) in \(node.config.dataDir)")
            }
            if !yes {
                print("This destroys every data key of tenant \(tenant) and its entries; it cannot be undone.")
                print("Type the tenant's name to go on: ", terminator: "")
                guard readLine()?.trimmingCharacters(in: .whitespaces) == tenant else {
                    print("not confirmed; nothing changed")
                    throw ExitCode(1)
                }
            }
            let removed = try await store.shred(tenant: tenant)
            print("tenant \(tenant): \(removed) data key row(s) destroyed, its entries removed")
            try await node.audit(.shred, tenant: tenant)
        }
    }
}

/// A node's files and keys, opened from its config for a key operation (running or stopped node).
struct KeyCommandContext {
    let config: NodeConfig
    let kek: KeyEncryptionKey
    /// The role's store key operations (origin or edge file).
    let store: KeyMaintenance?
    let auditStore: AuditStore?

    static var actor: String { "operator:" + (ProcessInfo.processInfo.environment["USER"] ?? "unknown") }

    init(configPath: String, openStores: Bool = true) throws {
        umask(0o077)
        do {
            config = try NodeConfig.load(path: configPath)
        } catch {
            throw ValidationError("\(error)")
        }
        kek = try KeyEncryptionKey.load(path: config.kekFile)
        let roleFile = config.dataDir + (config.role == .origin ? "/origin.sqlite" : "/edge.sqlite")
        guard FileManager.default.fileExists(atPath: roleFile) else {
            throw ValidationError("no database at \(roleFile); is data_dir in \(configPath) right?")
        }
        guard openStores else {
            store = nil
            auditStore = nil
            return
        }
        switch config.role {
        case .origin: store = try SQLiteOriginStore(path: roleFile, kek: kek, clock: SystemWallClock()).keyMaintenance
        case .edge:
            guard let tenant = config.tenant else { throw ValidationError("\(configPath) names no tenant for this edge") }
            store = try EdgeStore(path: roleFile, tenant: tenant, kek: kek, clock: SystemWallClock()).keyMaintenance
        }
        auditStore = try AuditStore(path: config.dataDir + "/audit.sqlite", kek: kek, clock: SystemWallClock())
    }

    var roleFile: String { config.dataDir + (config.role == .origin ? "/origin.sqlite" : "/edge.sqlite") }

    /// The SQLite files holding data keys.
    var files: [String] {
        [roleFile] + (FileManager.default.fileExists(atPath: config.dataDir + "/audit.sqlite") ? [config.dataDir + "/audit.sqlite"] : [])
    }

    struct Target {
        let label: String
        let tenant: String
        let maintenance: KeyMaintenance
    }

    /// What `keys rotate` works on: one tenant, or all of the node's and its audit trail.
    func targets(tenant: String?) async throws -> [Target] {
        guard let store, let auditStore else { return [] }
        let audit = Target(label: "audit trail", tenant: "_audit", maintenance: auditStore.keyMaintenance)
        if tenant == "_audit" { return [audit] }
        let tenants = try await store.tenants()
        if let tenant {
            if config.role == .edge, tenant != config.tenant {
                throw ValidationError("this edge holds tenant \(config.tenant ?? "?"), not \(tenant); rotate \(tenant) at the origin")
            }
            guard tenants.contains(tenant) else { throw ValidationError("no data keys of tenant \(tenant) in \(config.dataDir)") }
            return [Target(label: "tenant \(tenant)", tenant: tenant, maintenance: store)]
        }
        return tenants.map { Target(label: "tenant \($0)", tenant: $0, maintenance: store) } + [audit]
    }

    /// Appends a record of the key operation to the node's audit trail (the running node's
    /// chain continues after it: appends read the chain head inside their transaction).
    func audit(_ action: AuditRecord.KeyAction, tenant: String, keyVersion: Int64? = nil) async throws {
        try await auditStore?.append([
            .keyOperation(
                action, tenant: tenant, keyVersion: keyVersion, actor: Self.actor, node: config.nodeID, time: SystemWallClock().nowMillis())
        ])
    }
}
