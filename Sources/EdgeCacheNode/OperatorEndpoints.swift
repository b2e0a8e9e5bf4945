import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Hummingbird

/// `/healthz`, `/readyz` and `/status` for both roles.
enum OperatorEndpoints {
    static func json(_ status: Int, _ members: [(String, JSONValue)]) -> Response {
        let body = JSONValue.object(JSONObject(members.map { .init(key: $0.0, value: $0.1) })).serialized()
        return FHIRHTTP.response(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body + [0x0A])
    }

    static func number(_ n: Int64) -> JSONValue { .number(String(n)) }

    /// 200 with `status` when every check holds, else 503 `not-ready` naming the failed checks.
    static func readiness(_ checks: [(String, Bool)], serving: String, extra: [(String, JSONValue)] = []) -> Response {
        let failed = checks.filter { !$0.1 }.map(\.0)
        let members: [(String, JSONValue)] = [
            ("status", .string(failed.isEmpty ? serving : "not-ready")),
            ("checks", .object(JSONObject(checks.map { .init(key: $0.0, value: .string($0.1 ? "ok" : "failed")) }))),
        ]
        return json(failed.isEmpty ? 200 : 503, members + extra)
    }

    /// 200 with a contract type as JSON (`/status`).
    static func json(_ value: some Encodable) -> Response {
        FHIRHTTP.response(
            status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: Contract.encode(value) + [0x0A])
    }

    static func consentStatus(_ consent: ConsentGuard, store: EdgeStore, tenant: String) async -> ConsentStatus {
        let stats = consent.snapshot
        var status = ConsentStatus()
        status.laneLSN = (try? await store.consent.checkpoint()) ?? 0
        status.patientsWithRules = Int64(consent.registry.patientCount(tenant: tenant))
        status.blocks = Int64(stats.blocks)
        status.purgedEntries = Int64(stats.purged)
        status.propagationSamples = Int64(stats.sampleCount)
        status.propagationP50Milliseconds = stats.quantile(0.5)
        status.propagationP99Milliseconds = stats.quantile(0.99)
        status.propagationMaxMilliseconds = stats.maximum
        status.lastBlockLSN = stats.lastBlock?.lsn
        status.mainLSNAtLastBlock = stats.lastBlock?.mainLSN
        return status
    }

    /// The certificate in use and what reloads did.
    static func tlsStatus(_ reloads: ReloadStatus) -> TLSStatus {
        let tls = reloads.snapshot
        var status = TLSStatus()
        status.certificateSerial = tls.certificateSerial
        status.certificateNotAfter = tls.certificateNotAfter
        status.caNotAfter = tls.caNotAfter
        status.reloads = Int64(tls.succeeded)
        status.reloadsFailed = Int64(tls.failed)
        status.lastReloadAt = tls.lastAt
        status.lastReloadResult = tls.lastResult
        return status
    }

    /// A snapshot bootstrap under way (received, total, rate, time left) and the last one done.
    static func bootstrapStatus(_ link: EdgeLink) -> BootstrapStatus {
        let state = link.bootstrapState
        let now = link.clock.nowMillis()
        var status = BootstrapStatus()
        if let running = state.running {
            var reading = BootstrapStatus.Running()
            reading.received = running.received
            reading.total = running.total
            reading.elapsedMilliseconds = now - running.startedAt
            reading.ratePerSecond = running.rate(now: now).map { Int64($0.rounded()) }
            reading.secondsLeft = running.secondsLeft(now: now).map { Int64($0.rounded(.up)) }
            status.running = reading
        }
        if let last = state.last {
            var done = BootstrapStatus.Last()
            done.resources = last.resources
            done.milliseconds = last.milliseconds
            done.lsn = last.lsn
            done.finishedAt = last.finishedAt
            status.last = done
        }
        return status
    }

    static func digest(_ compute: () async throws -> TenantDigest.Value, tenant: String) async -> Response {
        do {
            let value = try await compute()
            return json(200, [("tenant", .string(tenant)), ("digest", .string(value.hex)), ("resources", number(Int64(value.count)))])
        } catch {
            return json(503, [("error", .string("the digest could not be computed"))])
        }
    }

    static func origin(
        path: String, tenant: String, store: any OriginStore, config: NodeConfig, policies: PolicyHolder, consent: ConsentRegistry,
        reloads: ReloadStatus
    ) async -> Response? {
        switch path {
        case "/digest":
            return await digest(
                {
                    try await TenantDigest.compute(policy: policies.registry, consent: consent, tenant: tenant) { type, offset in
                        var query = SearchQuery()
                        query.count = 1000
                        query.offset = offset
                        return try await store.search(tenant: tenant, type: type, query: query)
                    }
                }, tenant: tenant)
        case "/healthz": return json(200, [("status", .string("alive"))])
        case "/readyz":
            // The store answers, and a policy registry is loaded.
            let storeOK = (try? await store.search(tenant: tenant, type: "Patient", query: SearchQuery())) != nil
            return readiness(
                [("store", storeOK), ("policy", !policies.version.isEmpty)], serving: "ready")
        case "/status":
            // A tenant's caller sees its tenant's head only; the origin's own certificate (no
            // tenant) sees the head of all tenants.
            var status = OriginStatus()
            status.nodeID = config.nodeID
            status.headLSN = tenant.isEmpty ? store.headLSN : store.tenantHeadLSN(tenant)
            status.logEpoch = store.logEpoch.hex
            status.tls = tlsStatus(reloads)
            status.policyVersion = policies.version
            status.policySource = policies.source.rawValue
            return json(status)
        default: return nil
        }
    }

    static func edge(
        path: String, store: EdgeStore, link: EdgeLink, config: NodeConfig, policies: PolicyHolder, consent: ConsentGuard,
        evictor: Evictor, reloads: ReloadStatus
    ) async -> Response? {
        switch path {
        case "/digest":
            let tenant = config.tenant ?? ""
            return await digest(
                {
                    try await TenantDigest.compute(policy: policies.registry, consent: consent.registry, tenant: tenant) { type, offset in
                        var query = SearchQuery()
                        query.count = 1000
                        query.offset = offset
                        return try await store.entries.search(type: type, query: query)
                    }
                }, tenant: tenant)
        case "/healthz": return json(200, [("status", .string("alive"))])
        case "/readyz":
            // The store answers, the tenant's data key opens, a policy registry is loaded: the
            // edge can serve what it holds, whether or not the link to the origin is live.
            let storeOK = (try? await store.entries.count()) != nil
            let keysOK = await store.keysUsable()
            return readiness(
                [("store", storeOK), ("keys", keysOK), ("policy", !policies.version.isEmpty)], serving: "serving",
                extra: [("live", .bool(link.isLive)), ("link", .string(link.isLive ? "live" : link.notLiveReason))])
        case "/status":
            let counters = store.stream.counters
            let state = link.snapshot
            let outbox = (try? await store.outbox.counts()) ?? [:]
            var status = EdgeStatus()
            status.nodeID = config.nodeID
            status.tenant = config.tenant ?? ""
            status.link = link.isLive ? "live" : link.notLiveReason
            status.connected = state.connected
            status.originHeadLSN = state.originHead
            status.originEpoch = store.stream.originEpoch?.hex
            status.originEpochChanges = counters.epochChanges
            status.quarantinedEntries = Int64(store.entries.quarantinedEntries)
            status.appliedLSN = counters.checkpoint
            status.stalenessMilliseconds = link.stalenessMilliseconds
            status.eventsApplied = counters.eventsApplied
            status.eventsSkipped = counters.eventsSkipped
            status.bootstraps = counters.bootstraps
            status.bootstrap = bootstrapStatus(link)
            status.cachedEntries = (try? await store.entries.count()).map { Int64($0) }
            status.outboxQueued = Int64(outbox[.queued] ?? 0)
            status.outboxReview = Int64(outbox[.review] ?? 0)
            status.outboxDone = Int64(outbox[.done] ?? 0)
            status.outboxOldestQueuedMilliseconds = ((try? await store.outbox.oldestQueuedAt()) ?? nil).map {
                max(0, store.clock.nowMillis() - $0)
            }
            status.consent = await consentStatus(consent, store: store, tenant: config.tenant ?? "")
            status.cacheBudgetBytes = config.cacheMaxBytes
            status.cacheBytesEstimate = evictor.estimatedBytes
            var evictions = [String: Int64]()
            for (reason, count) in (try? await store.eviction.counts()) ?? [:] { evictions[reason.rawValue] = count }
            evictions["consent_purge"] = Int64(consent.snapshot.purged)
            status.evictions = evictions
            status.tls = tlsStatus(reloads)
            status.policyVersion = policies.version
            status.policySource = policies.source.rawValue
            return json(status)
        default: return nil
        }
    }
}
