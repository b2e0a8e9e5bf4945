import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import ServiceLifecycle

/// A hospital's edge: one tenant's sealed cache and outbox, its FHIR API for the hospital's
/// apps, and the services that follow the origin (change stream, consent lane, policy) and
/// replay queued writes.
package final class EdgeNode: RunnableNode {
    let parts: NodeParts
    package let tenant: String
    package let store: EdgeStore
    package let link: EdgeLink
    package let origin: OriginClient
    package let consent: ConsentGuard
    package let evictor: Evictor
    package let auditLog: AuditLog
    package let reloader: NodeReloader
    package let services: [any Service]

    /// - Parameter monotonic: the link's clock for heartbeats and staleness.
    init(_ parts: NodeParts, monotonic: any WallClock) throws {
        let config = parts.config
        guard let tenant = config.tenant else {
            throw ConfigError(file: config.sourceFile, line: nil, "an edge needs tenant (the hospital whose data it caches)")
        }
        let clock = parts.clock
        let policies = parts.policies
        let metrics = parts.metrics
        let reloads = parts.reloads
        let logger = parts.logger
        self.parts = parts
        self.tenant = tenant
        // The store opens first: a wrong KEK fails there, before any new file is created.
        let store = try EdgeStore(
            path: config.dataDir + "/edge.sqlite", tenant: tenant, kek: parts.kek, clock: clock, hotBytes: config.hotBytes)
        self.store = store
        if let stored = try store.policy.stored() {
            policies.replace(stored, source: .stored)
        }
        let origin = try OriginClient(config: config, material: parts.material, peer: .origin(config), logger: logger)
        let audit = try parts.auditLog(
            anchoring: .init(
                origin: origin, node: ClientIdentity(certificate: parts.material.leaf).node,
                intervalMilliseconds: Int64(config.auditAnchorIntervalMilliseconds)))
        self.origin = origin
        self.auditLog = audit
        let link = EdgeLink(
            applied: store.stream.counters.checkpoint, heartbeatTimeoutMilliseconds: Int64(config.heartbeatTimeoutMilliseconds),
            caughtUpWallClock: store.stream.counters.caughtUpAt, wallNow: clock.nowMillis(), clock: monotonic)
        self.link = link
        let queue = OutboxQueue(store: store, maxEntries: config.outboxMaxEntries)
        let replayer = Replayer(
            store: store, origin: origin, link: link, batchSize: config.outboxBatchSize, maxAttempts: config.outboxMaxAttempts,
            retentionDays: config.outboxRetentionDays, policies: policies, audit: audit, tenant: tenant, logger: logger)
        let consent = ConsentGuard(tenant: tenant, store: store, audit: audit, clock: clock, logger: logger)
        let evictor = Evictor(
            store: store, policies: policies, audit: audit, tenant: tenant, maxBytes: config.cacheMaxBytes,
            intervalMilliseconds: config.evictionIntervalMilliseconds, clock: clock, logger: logger)
        self.consent = consent
        self.evictor = evictor
        let backend = EdgeBackend(
            store: store, origin: origin, link: link, clock: clock, outbox: queue, replayer: replayer,
            maxAttempts: config.outboxMaxAttempts, policies: policies, consent: consent, evictor: evictor, logger: logger)
        var fhir = FHIRResponder(backend: backend, role: "edge", limits: parts.limits, clock: clock)
        fhir.consent = consent.registry
        fhir.largeBodies = parts.largeBodies
        var api = NodeResponder(
            allowedRoles: [.client], nodeTenant: tenant, fhir: fhir, replication: nil, limits: parts.limits,
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
        api.observer = parts.observer(audit)
        api.authentication = parts.apiAuthentication
        api.operatorRoles = [.edge]
        api.publicBaseURL = config.publicBaseURL
        var listeners: [NodeReloader.Listener] = []
        // The audit writer first in the group, so it is shut down last: every request answered is written.
        var services: [any Service] = [audit]
        services.append(
            try parts.application(api, name: "api", address: config.apiAddress, tls13: false, expected: 1, listeners: &listeners))
        services.append(
            StreamFollower(
                store: store, origin: origin, link: link, policies: policies, consent: consent, maxBatchBytes: config.batchMaxBytes,
                logger: logger))
        services.append(ConsentFollower(store: store, origin: origin, consent: consent, logger: logger))
        services.append(evictor)
        services.append(
            PolicySync(
                store: store, origin: origin, holder: policies, intervalMilliseconds: config.policyRefreshMilliseconds, logger: logger))
        services.append(replayer)
        services.append(SearchReindexer(logger: logger) { progress in try await store.entries.reindexSearchTerms(progress: progress) })
        let reloader = parts.reloader(listeners: listeners, origin: origin, audit: audit)
        services.append(reloader)
        self.reloader = reloader
        self.services = services
    }

    func shutdown() async { await origin.shutdown() }
}
