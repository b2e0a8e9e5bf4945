import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheHTTP
import EdgeCacheStore
import Foundation
import Hummingbird
import NIOSSL
import Prometheus

/// `/metrics`: Prometheus text format (version 0.0.4) for both roles.
///
/// Two kinds of figures. Events counted as they happen (requests, cache results by class,
/// origin fetches) live in a swift-prometheus `PrometheusCollectorRegistry` of this node (not a
/// process-wide one, so two nodes in one process keep their own) and count since the process
/// started. Everything else is read when scraped from where it is kept: the stream, eviction,
/// bootstrap and audit counters from the node's databases, so they carry on across restarts;
/// outbox depth, lag and staleness from the store and the link; certificate expiry from the
/// certificate files. Labels never carry resource ids or anything from a request body.
package final class NodeMetrics: Sendable {
    /// Returns the same counter for the same name and labels, so counters are looked up here
    /// on every event rather than kept.
    let registry = PrometheusCollectorRegistry()
    let role: String

    package init(role: String) {
        self.role = role
    }

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "edgecache", metricName: "requests", unitName: "total",
            helpText:
                "Answered /fhir and /replication requests (and refused non-canonical paths, api=invalid) since the process started, by API, method and HTTP status"
        )
    }
    static var cacheReads: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "edgecache", metricName: "cache_reads", unitName: "total",
            helpText:
                "Reads of one resource at the edge since the process started, by policy class and result (hit, miss, stale, revalidated, pending)"
        )
    }
    static var originFetches: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "edgecache", metricName: "origin_fetches", unitName: "total",
            helpText:
                "Requests to the origin made to answer a read (a miss, or revalidating an entry past its TTL) since the process started")
    }

    /// Counts an answered `/fhir` or `/replication` request; `dataClass` gives a type's class.
    func observe(_ answered: AnsweredRequest, dataClass: (String) -> String?) {
        registry.makeCounter(
            descriptor: Self.requests,
            labels: [("api", answered.api), ("method", Self.method(answered.method)), ("code", String(answered.status))]
        ).increment()
        // Reads of one resource answered at an edge carry cache facts.
        guard let facts = answered.fhir, facts.interaction == .read, let cache = facts.cache, let type = facts.type,
            let cls = dataClass(type)
        else { return }
        let result = cache.result
        registry.makeCounter(descriptor: Self.cacheReads, labels: [("class", cls), ("result", result)]).increment()
        if cache.askedOrigin {
            registry.makeCounter(descriptor: Self.originFetches, labels: [("reason", result == "miss" ? "miss" : "revalidate")]).increment()
        }
    }

    static func method(_ method: String) -> String {
        ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"].contains(method) ? method : "other"
    }

    /// The registry's event counters.
    func events() -> String {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The serial number (hex) of the first certificate of a PEM file; nil if unreadable.
    package static func serialNumber(ofFile file: String) -> String? {
        (try? NIOSSLCertificate.fromPEMFile(file).first).map { Hex.encode($0.serialNumber) }
    }

    /// Seconds until the first certificate of a PEM file expires (negative: expired); nil if unreadable.
    package static func secondsToExpiry(_ file: String, now: Date = Date()) -> Double? {
        guard let certificate = try? NIOSSLCertificate.fromPEMFile(file).first else { return nil }
        return (Double(certificate.notValidAfter) - now.timeIntervalSince1970).rounded()
    }
}

/// Writes metric families in the Prometheus text format.
struct MetricsText {
    private(set) var text = ""

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    mutating func family(_ name: String, _ type: String, _ help: String, _ samples: [([(String, String)], Double)]) {
        guard !samples.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (labels, value) in samples { sample(name, labels, value) }
    }

    mutating func family(_ name: String, _ type: String, _ help: String, _ value: Double) {
        family(name, type, help, [([], value)])
    }

    private mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        text += "\(name)\(rendered) \(Self.format(value))\n"
    }

    /// A histogram from per-bucket counts (the last one above every bound) and a sum.
    mutating func histogram(_ name: String, _ help: String, bounds: [Double], counts: [Int], sum: Double) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative = 0
        for (bound, count) in zip(bounds, counts) {
            cumulative += count
            sample(name + "_bucket", [("le", Self.format(bound))], Double(cumulative))
        }
        cumulative += counts.last ?? 0
        sample(name + "_bucket", [("le", "+Inf")], Double(cumulative))
        sample(name + "_sum", [], sum)
        sample(name + "_count", [], Double(cumulative))
    }
}

extension OperatorEndpoints {
    static func metricsResponse(_ text: String) -> Response {
        FHIRHTTP.response(
            status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
            body: Array(text.utf8))
    }

    /// What both roles report: certificates, audit chain, policy.
    static func commonMetrics(_ m: inout MetricsText, config: NodeConfig, audit: AuditLog, policies: PolicyHolder, reloads: ReloadStatus) {
        let tls = reloads.snapshot
        let now = Double(audit.clock.nowMillis()) / 1000
        m.family(
            "edgecache_certificate_expiry_seconds", "gauge",
            "Seconds until the certificate in use (and its CA's) expires; negative once expired",
            [
                ([("certificate", "node")], (Double(tls.certificateNotAfter) - now).rounded()),
                ([("certificate", "ca")], (Double(tls.caNotAfter) - now).rounded()),
            ])
        let onDisk = NodeMetrics.serialNumber(ofFile: config.certFile)
        m.family(
            "edgecache_certificate_reload_pending", "gauge",
            "1 when tls.cert on disk is not the certificate in use (replaced but not reloaded: send SIGHUP)",
            onDisk.map { $0 == tls.certificateSerial ? 0 : 1 } ?? 1)
        m.family(
            "edgecache_reloads_total", "counter", "Reloads of certificates and keys (SIGHUP) by result since the process started",
            [([("result", "ok")], Double(tls.succeeded)), ([("result", "failed")], Double(tls.failed))])
        m.family(
            "edgecache_audit_records_total", "counter", "Records in this node's hash-chained audit trail (kept across restarts)",
            Double(audit.store.chainHead.count))
        m.family(
            "edgecache_policy_info", "gauge", "The policy registry in force (value always 1)",
            [([("version", policies.version), ("source", policies.source.rawValue)], 1)])
    }

    static func originMetrics(
        metrics: NodeMetrics, store: any OriginStore, config: NodeConfig, audit: AuditLog, policies: PolicyHolder, reloads: ReloadStatus
    ) -> Response {
        var m = MetricsText()
        m.family("edgecache_up", "gauge", "1 while the node answers (role as a label)", [([("role", "origin")], 1)])
        m.family("edgecache_head_lsn", "gauge", "The origin's newest committed change (LSN), all tenants", Double(store.headLSN))
        m.family(
            "edgecache_log_epoch_info", "gauge", "The change log's epoch, new when the store was created or restored (value always 1)",
            [([("epoch", store.logEpoch.hex)], 1)])
        commonMetrics(&m, config: config, audit: audit, policies: policies, reloads: reloads)
        return metricsResponse(metrics.events() + m.text)
    }

    static func edgeMetrics(
        metrics: NodeMetrics, store: EdgeStore, link: EdgeLink, config: NodeConfig, audit: AuditLog, policies: PolicyHolder,
        consent: ConsentGuard, reloads: ReloadStatus
    ) async -> Response {
        var m = MetricsText()
        let counters = store.stream.counters
        let state = link.snapshot
        m.family("edgecache_up", "gauge", "1 while the node answers (role as a label)", [([("role", "edge")], 1)])
        m.family("edgecache_link_live", "gauge", "1 while the change stream from the origin is live", link.isLive ? 1 : 0)
        m.family(
            "edgecache_applied_lsn", "gauge", "The last change (LSN) applied at this edge, committed with its batch",
            Double(counters.checkpoint))
        m.family("edgecache_origin_head_lsn", "gauge", "The origin's newest change (LSN) as last heard", Double(state.originHead))
        m.family(
            "edgecache_stream_lag_changes", "gauge", "Changes the origin has committed that this edge has not applied yet",
            Double(max(0, state.originHead - counters.checkpoint)))
        if let staleness = link.stalenessMilliseconds {
            m.family(
                "edgecache_staleness_seconds", "gauge",
                "How far behind the origin this edge may be: time since it last knew it was caught up",
                Double(staleness) / 1000)
        }
        m.family(
            "edgecache_stream_events_total", "counter", "Change-stream events by result (kept across restarts)",
            [([("result", "applied")], Double(counters.eventsApplied)), ([("result", "skipped")], Double(counters.eventsSkipped))])
        m.family("edgecache_bootstraps_total", "counter", "Snapshot bootstraps (kept across restarts)", Double(counters.bootstraps))
        m.family(
            "edgecache_origin_epoch_changes_total", "counter",
            "Times the origin's log epoch changed (restored or failed over), each followed by a bootstrap of both lanes (kept across restarts)",
            Double(counters.epochChanges))
        if let epoch = store.stream.originEpoch {
            m.family(
                "edgecache_origin_epoch_info", "gauge", "The origin log epoch the cache holds data of (value always 1)",
                [([("epoch", epoch.hex)], 1)])
        }
        m.family(
            "edgecache_cache_quarantined_total", "counter",
            "Cached entries that failed authentication and were quarantined (never served; fetched again from the origin), kept across restarts",
            Double(counters.quarantined))
        m.family(
            "edgecache_cache_quarantined_entries", "gauge",
            "Quarantined entries not yet stored again; searches of their types are answered by the origin meanwhile",
            Double(store.entries.quarantinedEntries))
        if let entries = try? await store.entries.count() {
            m.family("edgecache_cached_entries", "gauge", "Entries in the sealed cache (tombstones included)", Double(entries))
        }
        let outbox = (try? await store.outbox.counts()) ?? [:]
        m.family(
            "edgecache_outbox_entries", "gauge", "Writes in the outbox by state (done and discarded are kept for outbox.retention_days)",
            OutboxState.allCases.map { ([("state", $0.rawValue)], Double(outbox[$0] ?? 0)) })
        let oldest = ((try? await store.outbox.oldestQueuedAt()) ?? nil).map { max(0, Double(store.clock.nowMillis() - $0) / 1000) } ?? 0
        m.family("edgecache_outbox_oldest_queued_seconds", "gauge", "Age of the oldest write waiting to be replayed (0: none)", oldest)
        m.family(
            "edgecache_conflicts_in_review", "gauge", "Queued writes set aside for a person (conflicts, rejections, too many attempts)",
            Double(outbox[.review] ?? 0))
        let evictions = (try? await store.eviction.counts()) ?? [:]
        m.family(
            "edgecache_evictions_total", "counter", "Entries evicted, by reason (kept across restarts)",
            EvictionReason.allCases.map { ([("reason", $0.rawValue)], Double(evictions[$0] ?? 0)) })
        let stats = consent.snapshot
        m.family(
            "edgecache_consent_blocks_total", "counter", "Consent changes that blocked a patient at this edge since the process started",
            Double(stats.blocks))
        m.family(
            "edgecache_consent_purged_entries_total", "counter",
            "Cached entries purged because consent was withdrawn, since the process started",
            Double(stats.purged))
        m.histogram(
            "edgecache_consent_propagation_seconds",
            "Origin commit of a consent change to the rule in force at this edge, since the process started",
            bounds: ConsentStats.bucketBounds.map { Double($0) / 1000 }, counts: stats.buckets, sum: Double(stats.sumMilliseconds) / 1000)
        let hot = store.entries.hot.stats
        m.family("edgecache_hot_tier_bytes", "gauge", "Bytes held by the in-memory hot tier", Double(hot.bytes))
        m.family(
            "edgecache_hot_tier_lookups_total", "counter", "Hot tier lookups by result since the process started",
            [([("result", "hit")], Double(hot.hits)), ([("result", "miss")], Double(hot.misses))])
        m.family(
            "edgecache_data_key_version", "gauge", "The tenant's current data key version at this edge",
            [([("tenant", config.tenant ?? "")], Double(store.keys.version))])
        commonMetrics(&m, config: config, audit: audit, policies: policies, reloads: reloads)
        return metricsResponse(metrics.events() + m.text)
    }
}
