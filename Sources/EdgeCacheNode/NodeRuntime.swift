import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheHTTP
import EdgeCacheStore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// One node assembled from its config: an ``OriginNode`` or an ``EdgeNode``, each holding only
/// its own role's parts. This is the composition root: the one place that picks the real clock.
package enum NodeRuntime: Sendable {
    case origin(OriginNode)
    case edge(EdgeNode)

    /// - Parameter clock: replaces both the wall clock and the link's monotonic clock (tests).
    package init(config: NodeConfig, logger: Logger, clock injected: (any WallClock)? = nil) throws {
        Allocator.limitArenas()
        let parts = try NodeParts(config: config, logger: logger, clock: injected ?? SystemWallClock())
        switch config.role {
        case .origin: self = .origin(try OriginNode(parts))
        case .edge: self = .edge(try EdgeNode(parts, monotonic: injected ?? MonotonicClock()))
        }
    }

    private var node: any RunnableNode {
        switch self {
        case .origin(let node): node
        case .edge(let node): node
        }
    }

    package var config: NodeConfig { node.parts.config }
    package var services: [any Service] { node.services }
    /// Bound ports, filled in as listeners start (`api`, `peer`).
    package var ports: ListeningPorts { node.parts.ports }
    /// The node's audit trail writer.
    package var auditLog: AuditLog { node.auditLog }
    /// The policy registry in force.
    package var policies: PolicyHolder { node.parts.policies }
    /// `/metrics` of this node (event counters since the process started).
    package var metrics: NodeMetrics { node.parts.metrics }
    /// Reloads certificates and keys on SIGHUP.
    package var reloader: NodeReloader { node.reloader }

    package var edge: EdgeNode? { if case .edge(let node) = self { node } else { nil } }
    package var origin: OriginNode? { if case .origin(let node) = self { node } else { nil } }
    package var edgeStore: EdgeStore? { edge?.store }
    package var edgeLink: EdgeLink? { edge?.link }
    package var evictor: Evictor? { edge?.evictor }
    package var originStore: (any OriginStore)? { origin?.store }

    /// Runs the node until SIGTERM/SIGINT, then drains in-flight requests.
    package func run() async throws {
        unlink(config.dataDir + "/listening.json")
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: node.parts.logger)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await shutdown()
            throw error
        }
        await shutdown()
    }

    /// Releases clients (for callers that run ``services`` in their own group).
    package func shutdown() async { await node.shutdown() }
}

/// What both roles' node types offer the runtime.
protocol RunnableNode: Sendable {
    var parts: NodeParts { get }
    var services: [any Service] { get }
    var auditLog: AuditLog { get }
    var reloader: NodeReloader { get }
    func shutdown() async
}

/// What both roles build the same way from the config: keys, TLS material, limits, policies,
/// metrics, API authentication and the listeners.
struct NodeParts: Sendable {
    let config: NodeConfig
    let logger: Logger
    let clock: any WallClock
    let kek: KeyEncryptionKey
    let material: TLSMaterial
    let reloads: ReloadStatus
    let limits: RequestLimits
    let largeBodies: LargeBodyGate
    let ports = ListeningPorts()
    let metrics: NodeMetrics
    let policies: PolicyHolder
    /// Bearer tokens (and certificates, unless turned off) on the API listener; the peer
    /// listener stays mTLS only.
    let apiAuthentication: ClientAuthentication

    init(config: NodeConfig, logger: Logger, clock: any WallClock) throws {
        self.config = config
        self.logger = logger
        self.clock = clock
        kek = try config.openKEK()
        material = try config.loadTLSMaterial()
        reloads = ReloadStatus(material)
        limits = RequestLimits(
            maxBodyBytes: config.maxBodyBytes, maxHeaderBytes: config.maxHeaderBytes, bodyTimeoutSeconds: config.bodyTimeoutSeconds)
        largeBodies = LargeBodyGate(
            threshold: config.largeBodyBytes, maxPerNode: config.maxLargeBodies, maxPerClient: config.maxLargeBodiesPerClient)
        metrics = NodeMetrics(role: config.role.rawValue)
        let filePolicy = try config.policyFile.map { path throws(ConfigError) in try PolicyFile.load(path: path) }
        policies = PolicyHolder(filePolicy ?? DefaultPolicy.registry, source: filePolicy == nil ? .builtin : .file)
        let issuers = try config.tokenIssuers()
        apiAuthentication = ClientAuthentication(
            bearer: issuers.isEmpty
                ? nil : BearerTokenVerifier(issuers: issuers, leewaySeconds: Int64(config.auth.leewaySeconds), clock: clock),
            acceptCertificates: config.auth.clientCertificates)
    }

    /// The node's audit trail (its own hash-chained file).
    func auditLog(anchoring: AuditLog.Anchoring? = nil) throws -> AuditLog {
        AuditLog(
            store: try AuditStore(path: config.dataDir + "/audit.sqlite", kek: kek, clock: clock), node: config.nodeID, clock: clock,
            policies: policies, anchoring: anchoring, logger: logger)
    }

    /// Every answered request goes to the audit trail and the metrics.
    func observer(_ audit: AuditLog) -> @Sendable (AnsweredRequest) -> Void {
        let metrics = metrics
        let policies = policies
        return {
            audit.observe($0)
            metrics.observe($0, dataClass: { policies.policy(forType: $0).dataClass.rawValue })
        }
    }

    func reloader(listeners: [NodeReloader.Listener], origin: OriginClient?, audit: AuditLog) -> NodeReloader {
        NodeReloader(
            config: config, material: material, listeners: listeners, origin: origin, authentication: apiAuthentication,
            audit: audit, status: reloads, clock: clock, logger: logger)
    }

    /// A listener serving `responder` with the node's TLS material (reloadable on SIGHUP);
    /// `<data_dir>/listening.json` is written once all `expected` listeners are up.
    func application(
        _ responder: NodeResponder, name: String, address: NodeConfig.Address, tls13: Bool, expected: Int,
        listeners: inout [NodeReloader.Listener]
    ) throws -> some Service {
        let optional = responder.authentication.bearer != nil
        let contexts = try TLSContextHolder(material.serverConfiguration(minimumTLS13: tls13, optionalClientCertificate: optional))
        listeners.append(.init(name: name, contexts: contexts, minimumTLS13: tls13, optionalClientCertificate: optional))
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 64 * 1024, maxHeaderListSize: 256 * 1024, maxHeaderFieldCount: 1000))
        let dataDir = config.dataDir
        let ports = ports
        let logger = logger
        return Application(
            responder: responder,
            server: .reloadableTLS(http1: http1, contexts: contexts),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let all = ports.set(name, port)
                logger.notice("listening", metadata: ["listener": "\(name)", "port": "\(port)"])
                // Scripts and tests wait for this file.
                if all.count == expected { ListeningFile(ports: all).write(dataDir: dataDir) }
            },
            logger: logger)
    }
}

/// The ports a node's listeners are bound to, by listener name.
package final class ListeningPorts: Sendable {
    private let ports = Mutex<[String: Int]>([:])

    package init() {}

    /// Records a port and returns all known so far.
    func set(_ name: String, _ port: Int) -> [String: Int] {
        ports.withLock {
            $0[name] = port
            return $0
        }
    }

    package subscript(name: String) -> Int? { ports.withLock { $0[name] } }
}
