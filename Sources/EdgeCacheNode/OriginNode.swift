import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Hummingbird
import ServiceLifecycle

/// The cloud origin: the system of record for every tenant, its FHIR API for clients and edges,
/// and the replication API (change stream, snapshots, replayed writes, audit anchors) on the
/// peer listener.
package final class OriginNode: RunnableNode {
    let parts: NodeParts
    package let store: any OriginStore
    package let consent: ConsentRegistry
    package let auditLog: AuditLog
    package let reloader: NodeReloader
    package let services: [any Service]

    init(_ parts: NodeParts) throws {
        let config = parts.config
        guard let peerAddress = config.peerAddress else {
            throw ConfigError(file: config.sourceFile, line: nil, "an origin needs listen.peer (the replication listener)")
        }
        let clock = parts.clock
        let policies = parts.policies
        let metrics = parts.metrics
        let reloads = parts.reloads
        // The store opens first: a wrong KEK fails there, before any new file is created.
        let store = try SQLiteOriginStore(path: config.dataDir + "/origin.sqlite", kek: parts.kek, clock: clock)
        let audit = try parts.auditLog()
        let consent = ConsentRegistry(loader: { tenant in try await OriginBackend.consents(store, tenant: tenant) })
        let backend = OriginBackend(store: store, consent: consent)
        var fhir = FHIRResponder(backend: backend, role: "origin", limits: parts.limits, clock: clock)
        fhir.consent = consent
        fhir.largeBodies = parts.largeBodies
        let operatorEndpoints: @Sendable (String, String) async -> Response? = { path, tenant in
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
            allowedRoles: [.client, .edge], nodeTenant: nil, fhir: fhir, replication: nil, limits: parts.limits,
            operatorEndpoints: operatorEndpoints)
        api.observer = parts.observer(audit)
        api.authentication = parts.apiAuthentication
        api.operatorRoles = [.origin]
        api.publicBaseURL = config.publicBaseURL
        var replication = ReplicationResponder(
            store: store,
            settings: StreamSettings(
                heartbeatMilliseconds: config.heartbeatMilliseconds, batchLimit: config.batchLimit,
                batchMaxBytes: config.batchMaxBytes, maxConcurrentReads: config.maxConcurrentReads),
            clock: clock, limits: parts.limits, writeBatch: { tenant, items in try await backend.writeBatch(tenant: tenant, items) })
        replication.policy = { policies.registry }
        let auditStore = audit.store
        replication.acceptAnchor = { tenant, node, count, hash in
            try await auditStore.acceptAnchor(tenant: tenant, node: node, count: count, hash: hash, at: clock.nowMillis())
        }
        var peer = NodeResponder(
            allowedRoles: [.edge], nodeTenant: nil, fhir: fhir, replication: replication, limits: parts.limits,
            operatorEndpoints: operatorEndpoints)
        peer.observer = parts.observer(audit)
        var listeners: [NodeReloader.Listener] = []
        // The audit writer first in the group, so it is shut down last: every request answered is written.
        var services: [any Service] = [audit]
        services.append(
            try parts.application(api, name: "api", address: config.apiAddress, tls13: false, expected: 2, listeners: &listeners))
        services.append(try parts.application(peer, name: "peer", address: peerAddress, tls13: true, expected: 2, listeners: &listeners))
        services.append(
            LogCompactor(
                store: store, keep: config.logRetentionChanges, idempotencyRetentionDays: config.idempotencyRetentionDays, clock: clock,
                logger: parts.logger))
        services.append(
            SearchReindexer(logger: parts.logger) { progress in try await store.reindexSearchTerms(batchSize: 250, progress: progress) })
        let reloader = parts.reloader(listeners: listeners, origin: nil, audit: audit)
        services.append(reloader)
        self.parts = parts
        self.store = store
        self.consent = consent
        self.auditLog = audit
        self.reloader = reloader
        self.services = services
    }

    func shutdown() async {}
}
