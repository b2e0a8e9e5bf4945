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

    static func consentMembers(_ consent: ConsentGuard, store: EdgeStore, tenant: String) async -> JSONValue {
        let laneLSN = (try? await store.consentCheckpoint()) ?? 0
        let stats = consent.snapshot
        func ms(_ v: Int64?) -> JSONValue { v.map { number($0) } ?? .null }
        return .object(
            JSONObject([
                .init(key: "lane_lsn", value: number(laneLSN)),
                .init(key: "patients_with_rules", value: number(Int64(consent.registry.patientCount(tenant: tenant)))),
                .init(key: "blocks", value: number(Int64(stats.blocks))),
                .init(key: "purged_entries", value: number(Int64(stats.purged))),
                .init(key: "propagation_samples", value: number(Int64(stats.sampleCount))),
                .init(key: "propagation_p50_ms", value: ms(stats.quantile(0.5))),
                .init(key: "propagation_p99_ms", value: ms(stats.quantile(0.99))),
                .init(key: "propagation_max_ms", value: ms(stats.maximum)),
                .init(key: "last_block_lsn", value: ms(stats.lastBlock?.lsn)),
                .init(key: "main_lsn_at_last_block", value: ms(stats.lastBlock?.mainLSN)),
            ]))
    }

    /// The certificate in use and what reloads did.
    static func tlsMember(_ reloads: ReloadStatus) -> (String, JSONValue) {
        let tls = reloads.snapshot
        return (
            "tls",
            .object(
                JSONObject([
                    .init(key: "certificate_serial", value: .string(tls.certificateSerial)),
                    .init(key: "certificate_not_after", value: number(tls.certificateNotAfter)),
                    .init(key: "ca_not_after", value: number(tls.caNotAfter)),
                    .init(key: "reloads", value: number(Int64(tls.succeeded))),
                    .init(key: "reloads_failed", value: number(Int64(tls.failed))),
                    .init(key: "last_reload_at", value: tls.lastAt.map { number($0) } ?? .null),
                    .init(key: "last_reload_result", value: tls.lastResult.map { .string($0) } ?? .null),
                ]))
        )
    }

    /// A snapshot bootstrap under way (received, total, rate, time left) and the last one done.
    static func bootstrapMember(_ link: EdgeLink) -> (String, JSONValue) {
        let state = link.bootstrapState
        let now = link.clock.nowMillis()
        var members: [JSONObject.Member] = [.init(key: "running", value: .bool(state.running != nil))]
        if let running = state.running {
            members += [
                .init(key: "received", value: number(running.received)),
                .init(key: "total", value: running.total.map { number($0) } ?? .null),
                .init(key: "elapsed_ms", value: number(now - running.startedAt)),
                .init(key: "rate_per_s", value: running.rate(now: now).map { number(Int64($0.rounded())) } ?? .null),
                .init(key: "seconds_left", value: running.secondsLeft(now: now).map { number(Int64($0.rounded(.up))) } ?? .null),
            ]
        }
        if let last = state.last {
            members.append(
                .init(
                    key: "last",
                    value: .object(
                        JSONObject([
                            .init(key: "resources", value: number(last.resources)), .init(key: "ms", value: number(last.milliseconds)),
                            .init(key: "lsn", value: number(last.lsn)), .init(key: "finished_at", value: number(last.finishedAt)),
                        ]))))
        }
        return ("bootstrap", .object(JSONObject(members)))
    }

    static func policyMembers(_ policies: PolicyHolder) -> [(String, JSONValue)] {
        [("policy_version", .string(policies.version)), ("policy_source", .string(policies.source.rawValue))]
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
            let head = tenant.isEmpty ? store.headLSN : store.tenantHeadLSN(tenant)
            return json(
                200,
                [
                    ("role", .string("origin")), ("node_id", .string(config.nodeID)),
                    ("head_lsn", number(head)), ("log_epoch", .string(store.logEpoch.hex)), tlsMember(reloads),
                ] + policyMembers(policies))
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
                        return try await store.search(type: type, query: query)
                    }
                }, tenant: tenant)
        case "/healthz": return json(200, [("status", .string("alive"))])
        case "/readyz":
            // The store answers, the tenant's data key opens, a policy registry is loaded: the
            // edge can serve what it holds, whether or not the link to the origin is live.
            let storeOK = (try? await store.entryCount()) != nil
            let keysOK = await store.keysUsable()
            return readiness(
                [("store", storeOK), ("keys", keysOK), ("policy", !policies.version.isEmpty)], serving: "serving",
                extra: [("live", .bool(link.isLive)), ("link", .string(link.isLive ? "live" : link.notLiveReason))])
        case "/status":
            let counters = store.counters
            let state = link.snapshot
            let staleness: JSONValue = link.stalenessMilliseconds.map { number($0) } ?? .null
            let entries = (try? await store.entryCount()).map { JSONValue.number(String($0)) } ?? .null
            let outbox = (try? await store.outboxCounts()) ?? [:]
            let oldest: JSONValue =
                ((try? await store.oldestQueuedAt()) ?? nil).map { number(max(0, store.clock.nowMillis() - $0)) } ?? .null
            return json(
                200,
                [
                    ("role", .string("edge")), ("node_id", .string(config.nodeID)), ("tenant", .string(config.tenant ?? "")),
                    ("link", .string(link.isLive ? "live" : link.notLiveReason)),
                    ("connected", .bool(state.connected)),
                    ("origin_head_lsn", number(state.originHead)),
                    ("origin_epoch", store.originEpoch.map { .string($0.hex) } ?? .null),
                    ("origin_epoch_changes", number(counters.epochChanges)),
                    ("quarantined_entries", number(Int64(store.quarantinedEntries))),
                    ("applied_lsn", number(counters.checkpoint)),
                    ("staleness_ms", staleness),
                    ("events_applied", number(counters.eventsApplied)),
                    ("events_skipped", number(counters.eventsSkipped)),
                    ("bootstraps", number(counters.bootstraps)), bootstrapMember(link),
                    ("cached_entries", entries),
                    ("outbox_queued", number(Int64(outbox[.queued] ?? 0))),
                    ("outbox_review", number(Int64(outbox[.review] ?? 0))),
                    ("outbox_done", number(Int64(outbox[.done] ?? 0))),
                    ("outbox_oldest_queued_ms", oldest),
                    ("consent", await consentMembers(consent, store: store, tenant: config.tenant ?? "")),
                    ("cache_budget_bytes", config.cacheMaxBytes.map { number($0) } ?? .null),
                    ("cache_bytes_estimate", number(evictor.estimatedBytes)),
                    (
                        "evictions",
                        .object(
                            JSONObject(
                                ((try? await store.evictionCounts()) ?? [:]).sorted { $0.key.rawValue < $1.key.rawValue }.map {
                                    .init(key: $0.key.rawValue, value: number($0.value))
                                } + [.init(key: "consent_purge", value: number(Int64(consent.snapshot.purged)))]))
                    ),
                    tlsMember(reloads),
                ] + policyMembers(policies))
        default: return nil
        }
    }
}
