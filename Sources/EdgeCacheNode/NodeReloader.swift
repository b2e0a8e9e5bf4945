import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheHTTP
import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Reloads a running node's certificates and keys on SIGHUP (or ``reload()``), without
/// dropping a connection: the node's certificate chain, private key and trusted CA
/// (`tls.cert`, `tls.key`, `tls.ca`) for every listener and for the edge's client to the
/// origin, and the bearer token issuers with their public keys (`auth.issuers`).
///
/// A reload is all or nothing. The config file is read again and the new files are checked
/// first (each parses, the certificate is current, a mutual-TLS handshake with them completes
/// in memory, the certificate names the same tenant and role as the one it replaces, every
/// issuer key reads); if any check fails, the node keeps what it had and says why in its log,
/// in `/status` and in `edgecache_reloads_total{result="failed"}`. Connections already open keep
/// the certificate they were accepted with; new ones get the new one. Other settings in the
/// config file take effect at the next restart (a reload logs which ones changed).
package final class NodeReloader: Service, Sendable {
    /// A TLS listener whose context a reload replaces.
    struct Listener: Sendable {
        var name: String
        var contexts: TLSContextHolder
        var minimumTLS13: Bool
        var optionalClientCertificate: Bool
    }

    /// What `/status` and `/metrics` show of reloads (``ReloadStatus``).
    package struct State: Sendable {
        package var succeeded = 0
        package var failed = 0
        /// Epoch milliseconds and outcome of the last reload ("ok" or why it failed).
        package var lastAt: Int64?
        package var lastResult: String?
        /// The certificate in use: its expiry (epoch seconds) and serial number (hex).
        package var certificateNotAfter: Int64
        package var caNotAfter: Int64
        package var certificateSerial: String
    }

    private let configPath: String
    private let loaded: Mutex<NodeConfig>
    private let listeners: [Listener]
    private let origin: OriginClient?
    private let authentication: ClientAuthentication
    private let audit: AuditLog?
    private let logger: Logger
    private let clock: any WallClock
    private let identity: ClientIdentity
    private let state: ReloadStatus

    init(
        config: NodeConfig, material: TLSMaterial, listeners: [Listener], origin: OriginClient?, authentication: ClientAuthentication,
        audit: AuditLog?, status: ReloadStatus, clock: any WallClock, logger: Logger
    ) {
        self.configPath = config.sourceFile
        self.loaded = Mutex(config)
        self.listeners = listeners
        self.origin = origin
        self.authentication = authentication
        self.audit = audit
        self.clock = clock
        self.logger = logger
        self.identity = ClientIdentity(certificate: material.leaf)
        self.state = status
    }

    package var snapshot: State { state.snapshot }

    package func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        try await cancelWhenGracefulShutdown {
            for await _ in signals {
                self.logger.notice("SIGHUP: reloading certificates and keys")
                _ = self.reload()
            }
        }
    }

    /// Reloads certificates and keys from the config file's current contents.
    /// - Returns: nil on success, else why nothing was changed.
    @discardableResult
    package func reload() -> String? {
        do {
            let applied = try prepareAndApply()
            state.withLock {
                $0.succeeded += 1
                $0.lastAt = clock.nowMillis()
                $0.lastResult = "ok"
                $0.certificateNotAfter = Int64(applied.leaf.notValidAfter)
                $0.caNotAfter = Self.earliestExpiry(applied.trusted)
                $0.certificateSerial = Hex.encode(applied.leaf.serialNumber)
            }
            let days = (Int64(applied.leaf.notValidAfter) - clock.nowMillis() / 1000) / 86_400
            logger.notice(
                "reloaded certificates and keys",
                metadata: [
                    "certificate_serial": "\(Hex.encode(applied.leaf.serialNumber))", "certificate_days_left": "\(days)",
                    "listeners": "\(listeners.map(\.name).joined(separator: ","))",
                ])
            audit?.recordReload(outcome: 200, detail: "serial \(Hex.encode(applied.leaf.serialNumber))", tenant: identity.tenant ?? "-")
            return nil
        } catch {
            let reason = String(describing: error)
            state.withLock {
                $0.failed += 1
                $0.lastAt = clock.nowMillis()
                $0.lastResult = reason
            }
            logger.error("reload refused; the node keeps its current certificates and keys", metadata: ["reason": "\(reason)"])
            audit?.recordReload(outcome: 422, detail: "refused", tenant: identity.tenant ?? "-")
            return reason
        }
    }

    struct Refused: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private func prepareAndApply() throws -> TLSMaterial {
        let next = try NodeConfig.load(path: configPath)
        let previous = loaded.withLock { $0 }
        let material = try next.loadTLSMaterial(now: clock.nowMillis() / 1000)
        let named = ClientIdentity(certificate: material.leaf)
        guard named.tenant == identity.tenant, named.role == identity.role else {
            throw Refused(
                "tls.cert \(next.certFile) names tenant \(named.tenant ?? "none") and role \(named.role?.rawValue ?? "none"); "
                    + "this node runs as tenant \(identity.tenant ?? "none"), role \(identity.role?.rawValue ?? "none")")
        }
        let hadTokens = authentication.bearer != nil
        let issuers = try next.tokenIssuers()
        guard hadTokens == !issuers.isEmpty, next.auth.clientCertificates == previous.auth.clientCertificates else {
            throw Refused("turning bearer tokens or client certificates on or off ('auth') takes a restart")
        }
        // Every context is built before any is used: a failure changes nothing.
        var contexts: [(TLSContextHolder, NIOSSLContext)] = []
        for listener in listeners {
            let configuration = material.serverConfiguration(
                minimumTLS13: listener.minimumTLS13, optionalClientCertificate: listener.optionalClientCertificate)
            contexts.append((listener.contexts, try NIOSSLContext(configuration: configuration)))
        }
        for (holder, context) in contexts { holder.replace(with: context) }
        origin?.reload(tls: material)
        audit?.anchorNode.withLock { $0 = named.node }
        if hadTokens { authentication.replaceIssuers(issuers) }
        let changed = Self.restartOnlyChanges(previous, next)
        if !changed.isEmpty {
            logger.warning("config changes that take effect at the next restart", metadata: ["keys": "\(changed.joined(separator: ","))"])
        }
        var kept = previous
        kept.certFile = next.certFile
        kept.keyFile = next.keyFile
        kept.caFile = next.caFile
        kept.auth = next.auth
        loaded.withLock { $0 = kept }
        return material
    }

    /// Settings a reload does not apply, that differ between the running and the new config.
    static func restartOnlyChanges(_ old: NodeConfig, _ new: NodeConfig) -> [String] {
        var changed: [String] = []
        if old.role != new.role { changed.append("role") }
        if old.nodeID != new.nodeID { changed.append("node_id") }
        if old.tenant != new.tenant { changed.append("tenant") }
        if old.apiAddress != new.apiAddress || old.peerAddress != new.peerAddress { changed.append("listen") }
        if old.originURL != new.originURL { changed.append("origin.url") }
        if old.dataDir != new.dataDir { changed.append("data_dir") }
        if old.kekFile != new.kekFile { changed.append("keys.kek_file") }
        if old.policyFile != new.policyFile { changed.append("policy") }
        if old.logLevel != new.logLevel || old.logFormat != new.logFormat { changed.append("log") }
        return changed
    }

    static func earliestExpiry(_ certificates: [NIOSSLCertificate]) -> Int64 {
        certificates.map { Int64($0.notValidAfter) }.min() ?? 0
    }

}

/// The reload counters and the certificate in use, shared by the reloader and the operator
/// endpoints.
package final class ReloadStatus: Sendable {
    private let state: Mutex<NodeReloader.State>

    init(_ material: TLSMaterial) {
        state = Mutex(
            NodeReloader.State(
                certificateNotAfter: Int64(material.leaf.notValidAfter), caNotAfter: NodeReloader.earliestExpiry(material.trusted),
                certificateSerial: Hex.encode(material.leaf.serialNumber)))
    }

    package var snapshot: NodeReloader.State { state.withLock { $0 } }

    func withLock(_ body: (inout NodeReloader.State) -> Void) { state.withLock { body(&$0) } }
}
