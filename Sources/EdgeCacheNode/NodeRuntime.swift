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

/// One node (origin or edge) assembled from its config: stores, listeners and background
/// services, ready to run in a `ServiceGroup`.
package final class NodeRuntime: Sendable {
    package let config: NodeConfig
    package let services: [any Service]
    /// Bound ports, filled in as listeners start (`api`, `peer`).
    package let ports = ListeningPorts()
    let logger: Logger
    let cleanup: @Sendable () async -> Void
    /// The origin's store (origin role only), e.g. for loading demo data.
    package let originStore: (any OriginStore)?
    /// The edge's store and link (edge role only).
    package let edgeStore: EdgeStore?
    package let edgeLink: EdgeLink?
    /// The node's audit trail writer.
    package let auditLog: AuditLog
    /// The policy registry in force.
    package let policies: PolicyHolder
    /// `/metrics` of this node (event counters since the process started).
    package let metrics: NodeMetrics
    /// The edge's consent state (edge role only).
    package let consentGuard: ConsentGuard?
    /// The edge's evictor (edge role only).
    package let evictor: Evictor?
    /// Reloads certificates and keys on SIGHUP.
    package let reloader: NodeReloader

    /// - Parameter clock: replaces both the wall clock and the link's monotonic clock (tests).
    package init(config: NodeConfig, logger: Logger, clock injected: (any WallClock)? = nil) throws {
        self.config = config
        self.logger = logger
        Allocator.limitArenas()
        let kek = try config.openKEK()
        let material = try config.loadTLSMaterial()
        var listeners: [NodeReloader.Listener] = []
        let reloads = ReloadStatus(material)
        let clock: any WallClock = injected ?? SystemWallClock()
        let filePolicy = try config.policyFile.map { path throws(ConfigError) in try PolicyFile.load(path: path) }
        let limits = RequestLimits(
            maxBodyBytes: config.maxBodyBytes, maxHeaderBytes: config.maxHeaderBytes,
            bodyTimeoutSeconds: config.bodyTimeoutSeconds)
        let portsRef = ports
        let largeBodies = LargeBodyGate(
            threshold: config.largeBodyBytes, maxPerNode: config.maxLargeBodies, maxPerClient: config.maxLargeBodiesPerClient)
        // The role's store opens first: a wrong KEK fails there, before any new file is created.
        let openedOrigin =
            config.role == .origin
            ? try SQLiteOriginStore(path: config.dataDir + "/origin.sqlite", kek: kek, clock: clock) : nil
        let openedEdge =
            config.role == .edge
            ? try EdgeStore(
                path: config.dataDir + "/edge.sqlite", tenant: config.tenant!, kek: kek, clock: clock, hotBytes: config.hotBytes)
            : nil
        let audit = AuditLog(
            store: try AuditStore(path: config.dataDir + "/audit.sqlite", kek: kek, clock: clock), node: config.nodeID, clock: clock,
            logger: logger)
        let metrics = NodeMetrics(role: config.role.rawValue)
        self.metrics = metrics
        let policies = PolicyHolder(filePolicy ?? DefaultPolicy.registry, source: filePolicy == nil ? .builtin : .file)
        let observer: @Sendable (AnsweredRequest) -> Void = {
            audit.observe($0)
            metrics.observe($0, dataClass: { policies.policy(forType: $0).dataClass.rawValue })
        }
        // Bearer tokens (and certificates, unless turned off) on the API listener; the peer listener stays mTLS only.
        let issuers = try config.tokenIssuers()
        let apiAuthentication = ClientAuthentication(
            bearer: issuers.isEmpty
                ? nil : BearerTokenVerifier(issuers: issuers, leewaySeconds: Int64(config.auth.leewaySeconds), clock: clock),
            acceptCertificates: config.auth.clientCertificates)
        let originClient: OriginClient?
        // First in the group, so it is shut down last: every request answered is written.
        var services: [any Service] = [audit]
        auditLog = audit
        self.policies = policies
        audit.policies = policies
        switch config.role {
        case .origin:
            let store = openedOrigin!
            let consent = ConsentRegistry(loader: { tenant in try await OriginBackend.consents(store, tenant: tenant) })
            let backend = OriginBackend(store: store, consent: consent)
            var fhir = FHIRResponder(backend: backend, role: "origin", limits: limits, clock: clock)
            fhir.consent = consent
            fhir.largeBodies = largeBodies
            let status: @Sendable (String, String) async -> Response? = { path, tenant in
                if path == "/metrics" {
                    // Counters of every tenant: for the origin's own certificate only.
                    guard tenant.isEmpty else {
                        return FHIRHTTP.error(.forbidden("The origin's /metrics is read with the origin's own certificate"))
                    }
                    return OperatorEndpoints.originMetrics(
                        metrics: metrics, store: store, config: config, audit: audit, policies: policies, reloads: reloads)
                }
                return await OperatorEndpoints.origin(
                    path: path, tenant: tenant, store: store, config: config, policies: policies, consent: consent, reloads: reloads)
            }
            var api = NodeResponder(
                allowedRoles: [.client, .edge], nodeTenant: nil, fhir: fhir, replication: nil, limits: limits,
                operatorEndpoints: status)
            api.observer = observer
            api.authentication = apiAuthentication
            api.operatorRoles = [.origin]
            api.publicBaseURL = config.publicBaseURL
            var replication = ReplicationResponder(
                store: store,
                settings: StreamSettings(
                    heartbeatMilliseconds: config.heartbeatMilliseconds, batchLimit: config.batchLimit,
                    batchMaxBytes: config.batchMaxBytes, maxConcurrentReads: config.maxConcurrentReads),
                clock: clock, limits: limits, writeBatch: { tenant, items in try await backend.writeBatch(tenant: tenant, items) })
            replication.policy = { policies.registry }
            let auditStore = audit.store
            replication.acceptAnchor = { tenant, node, count, hash in
                try await auditStore.acceptAnchor(tenant: tenant, node: node, count: count, hash: hash, at: clock.nowMillis())
            }
            var peer = NodeResponder(
                allowedRoles: [.edge], nodeTenant: nil, fhir: fhir, replication: replication, limits: limits,
                operatorEndpoints: status)
            peer.observer = observer
            services.append(
                try Self.application(
                    api, name: "api", address: config.apiAddress, tls13: false, material: material, config: config, logger: logger,
                    ports: portsRef, listeners: &listeners))
            services.append(
                try Self.application(
                    peer, name: "peer", address: config.peerAddress!, tls13: true, material: material, config: config, logger: logger,
                    ports: portsRef, listeners: &listeners))
            services.append(
                LogCompactor(
                    store: store, keep: config.logRetentionChanges, idempotencyRetentionDays: config.idempotencyRetentionDays, clock: clock,
                    logger: logger))
            originStore = store
            consentGuard = nil
            evictor = nil
            edgeStore = nil
            edgeLink = nil
            cleanup = {}
            originClient = nil
        case .edge:
            let tenant = config.tenant!
            let store = openedEdge!
            if let stored = try store.storedPolicy() {
                policies.replace(stored, source: .stored)
            }
            let origin = try OriginClient(config: config, material: material, peer: .origin(config), logger: logger)
            originClient = origin
            audit.anchorTarget = origin
            audit.anchorNode.withLock { $0 = ClientIdentity(certificate: material.leaf).node }
            audit.anchorInterval = Int64(config.auditAnchorIntervalMilliseconds)
            let link = EdgeLink(
                applied: store.counters.checkpoint, heartbeatTimeoutMilliseconds: Int64(config.heartbeatTimeoutMilliseconds),
                caughtUpWallClock: store.counters.caughtUpAt, wallNow: clock.nowMillis(), clock: injected ?? MonotonicClock())
            let outbox = OutboxQueue(store: store, maxEntries: config.outboxMaxEntries)
            let replayer = Replayer(
                store: store, origin: origin, link: link, batchSize: config.outboxBatchSize, maxAttempts: config.outboxMaxAttempts,
                retentionDays: config.outboxRetentionDays, policies: policies, audit: audit, tenant: tenant, logger: logger)
            let consent = ConsentGuard(tenant: tenant, store: store, audit: audit, clock: clock, logger: logger)
            consentGuard = consent
            let evictor = Evictor(
                store: store, policies: policies, audit: audit, tenant: tenant, maxBytes: config.cacheMaxBytes,
                intervalMilliseconds: config.evictionIntervalMilliseconds, clock: clock, logger: logger)
            self.evictor = evictor
            let backend = EdgeBackend(
                store: store, origin: origin, link: link, clock: clock, outbox: outbox, replayer: replayer,
                maxAttempts: config.outboxMaxAttempts, policies: policies, consent: consent, evictor: evictor, logger: logger)
            var fhir = FHIRResponder(backend: backend, role: "edge", limits: limits, clock: clock)
            fhir.consent = consent.registry
            fhir.largeBodies = largeBodies
            var api = NodeResponder(
                allowedRoles: [.client], nodeTenant: tenant, fhir: fhir, replication: nil, limits: limits,
                operatorEndpoints: { path, _ in
                    if path == "/metrics" {
                        return await OperatorEndpoints.edgeMetrics(
                            metrics: metrics, store: store, link: link, config: config, audit: audit, policies: policies, consent: consent,
                            reloads: reloads)
                    }
                    return await OperatorEndpoints.edge(
                        path: path, store: store, link: link, config: config, policies: policies, consent: consent,
                        evictor: evictor, reloads: reloads)
                })
            api.observer = observer
            api.authentication = apiAuthentication
            api.operatorRoles = [.edge]
            api.publicBaseURL = config.publicBaseURL
            services.append(
                try Self.application(
                    api, name: "api", address: config.apiAddress, tls13: false, material: material, config: config, logger: logger,
                    ports: portsRef, listeners: &listeners))
            services.append(
                StreamFollower(
                    store: store, origin: origin, link: link, policies: policies, consent: consent, maxBatchBytes: config.batchMaxBytes,
                    logger: logger))
            services.append(ConsentFollower(store: store, origin: origin, consent: consent, logger: logger))
            services.append(evictor)
            services.append(
                PolicySync(
                    store: store, origin: origin, holder: policies, intervalMilliseconds: config.policyRefreshMilliseconds,
                    logger: logger))
            services.append(replayer)
            originStore = nil
            edgeStore = store
            edgeLink = link
            cleanup = { await origin.shutdown() }
        }
        reloader = NodeReloader(
            config: config, material: material, listeners: listeners, origin: originClient, authentication: apiAuthentication,
            audit: audit, status: reloads, clock: clock, logger: logger)
        services.append(reloader)
        self.services = services
    }

    private static func application(
        _ responder: NodeResponder, name: String, address: NodeConfig.Address, tls13: Bool, material: TLSMaterial, config: NodeConfig,
        logger: Logger, ports: ListeningPorts, listeners: inout [NodeReloader.Listener]
    ) throws -> some Service {
        let optional = responder.authentication.bearer != nil
        let contexts = try TLSContextHolder(material.serverConfiguration(minimumTLS13: tls13, optionalClientCertificate: optional))
        listeners.append(.init(name: name, contexts: contexts, minimumTLS13: tls13, optionalClientCertificate: optional))
        let http1 = HTTP1Channel.Configuration(
            idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 64 * 1024, maxHeaderListSize: 256 * 1024, maxHeaderFieldCount: 1000))
        let expected = config.role == .origin ? 2 : 1
        let dataDir = config.dataDir
        return Application(
            responder: responder,
            server: .reloadableTLS(http1: http1, contexts: contexts),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let all = ports.set(name, port)
                logger.notice("listening", metadata: ["listener": "\(name)", "port": "\(port)"])
                if all.count == expected { Self.writePortsFile(all, dataDir: dataDir) }
            },
            logger: logger)
    }

    /// Writes `<data_dir>/listening.json` atomically once every listener is up (scripts and
    /// tests wait for it).
    static func writePortsFile(_ ports: [String: Int], dataDir: String) {
        let body = "{" + ports.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}\n"
        let path = dataDir + "/listening.json"
        try? body.write(toFile: path + ".tmp", atomically: false, encoding: .utf8)
        rename(path + ".tmp", path)
    }

    /// Runs the node until SIGTERM/SIGINT, then drains in-flight requests.
    package func run() async throws {
        unlink(config.dataDir + "/listening.json")
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }

    /// Releases clients (for callers that run ``services`` in their own group).
    package func shutdown() async { await cleanup() }
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
