import Foundation

// The JSON documents a node hands to other programs: `/status`, `<data_dir>/listening.json` and
// the audit anchor exchange. The node encodes these types and `edgecache status`, the demo tour
// and the tests decode them; tools/edgecache_kit.py checks live replies against the fixtures in
// docs/contracts/, which a test keeps equal to what these types encode.

/// An optional that is written as `null` rather than left out: a reader tells "not known now"
/// (`null`) from "this version does not send it" (absent). Decoding takes either as `nil`.
@propertyWrapper
package struct Nullable<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    package var wrappedValue: Value?

    package init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// A missing key decodes as `nil`, like an `Optional`.
    package func decode<V>(_ type: Nullable<V>.Type, forKey key: Key) throws -> Nullable<V> {
        try decodeIfPresent(type, forKey: key) ?? Nullable(wrappedValue: nil)
    }
}

/// The encoder and decoder every contract goes through (sorted keys: stable fixtures and diffs).
package enum Contract {
    package static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The contract types hold strings, integers and booleans only: encoding cannot fail.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    package static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }
}

/// The certificate a node serves with and what SIGHUP reloads did (both roles' `/status`).
package struct TLSStatus: Codable, Sendable, Equatable {
    package var certificateSerial = ""
    /// Seconds since 1970.
    package var certificateNotAfter: Int64 = 0
    package var caNotAfter: Int64 = 0
    package var reloads: Int64 = 0
    package var reloadsFailed: Int64 = 0
    /// Milliseconds since 1970.
    @Nullable package var lastReloadAt: Int64?
    @Nullable package var lastReloadResult: String?

    package init() {}

    enum CodingKeys: String, CodingKey {
        case certificateSerial = "certificate_serial", certificateNotAfter = "certificate_not_after", caNotAfter = "ca_not_after"
        case reloads, reloadsFailed = "reloads_failed", lastReloadAt = "last_reload_at", lastReloadResult = "last_reload_result"
    }
}

/// The origin's `/status`.
package struct OriginStatus: Codable, Sendable, Equatable {
    package var role = "origin"
    package var nodeID = ""
    /// The caller's tenant's head; all tenants' for the origin's own certificate.
    package var headLSN: Int64 = 0
    package var logEpoch = ""
    package var tls = TLSStatus()
    package var policyVersion = ""
    package var policySource = ""

    package init() {}

    enum CodingKeys: String, CodingKey {
        case role, nodeID = "node_id", headLSN = "head_lsn", logEpoch = "log_epoch", tls
        case policyVersion = "policy_version", policySource = "policy_source"
    }
}

/// The edge's `/status`.
package struct EdgeStatus: Codable, Sendable, Equatable {
    package var role = "edge"
    package var nodeID = ""
    package var tenant = ""
    /// `live`, or why not (`origin-unreachable`, `bootstrapping`, …).
    package var link = ""
    package var connected = false
    package var originHeadLSN: Int64 = 0
    @Nullable package var originEpoch: String?
    package var originEpochChanges: Int64 = 0
    package var quarantinedEntries: Int64 = 0
    package var appliedLSN: Int64 = 0
    /// `null` until the edge first caught up.
    @Nullable package var stalenessMilliseconds: Int64?
    package var eventsApplied: Int64 = 0
    package var eventsSkipped: Int64 = 0
    package var bootstraps: Int64 = 0
    package var bootstrap = BootstrapStatus()
    @Nullable package var cachedEntries: Int64?
    package var outboxQueued: Int64 = 0
    package var outboxReview: Int64 = 0
    package var outboxDone: Int64 = 0
    @Nullable package var outboxOldestQueuedMilliseconds: Int64?
    package var consent = ConsentStatus()
    @Nullable package var cacheBudgetBytes: Int64?
    package var cacheBytesEstimate: Int64 = 0
    /// Entries evicted, by reason (`consent_purge` among them).
    package var evictions: [String: Int64] = [:]
    package var tls = TLSStatus()
    package var policyVersion = ""
    package var policySource = ""

    package init() {}

    /// Live, nothing left to apply, nothing queued.
    package var converged: Bool { link == "live" && appliedLSN >= originHeadLSN && outboxQueued == 0 }

    enum CodingKeys: String, CodingKey {
        case role, nodeID = "node_id", tenant, link, connected, originHeadLSN = "origin_head_lsn", originEpoch = "origin_epoch"
        case originEpochChanges = "origin_epoch_changes", quarantinedEntries = "quarantined_entries", appliedLSN = "applied_lsn"
        case stalenessMilliseconds = "staleness_ms", eventsApplied = "events_applied", eventsSkipped = "events_skipped"
        case bootstraps, bootstrap, cachedEntries = "cached_entries", outboxQueued = "outbox_queued", outboxReview = "outbox_review"
        case outboxDone = "outbox_done", outboxOldestQueuedMilliseconds = "outbox_oldest_queued_ms", consent
        case cacheBudgetBytes = "cache_budget_bytes", cacheBytesEstimate = "cache_bytes_estimate", evictions, tls
        case policyVersion = "policy_version", policySource = "policy_source"
    }
}

/// A snapshot bootstrap under way and the last one done (in the edge's `/status`).
package struct BootstrapStatus: Codable, Sendable, Equatable {
    package struct Running: Sendable, Equatable {
        package var received: Int64 = 0
        package var total: Int64?
        package var elapsedMilliseconds: Int64 = 0
        package var ratePerSecond: Int64?
        package var secondsLeft: Int64?

        package init() {}
    }

    package struct Last: Codable, Sendable, Equatable {
        package var resources: Int64 = 0
        package var milliseconds: Int64 = 0
        package var lsn: Int64 = 0
        package var finishedAt: Int64 = 0

        package init() {}

        enum CodingKeys: String, CodingKey {
            case resources, milliseconds = "ms", lsn, finishedAt = "finished_at"
        }
    }

    /// The running bootstrap's members sit beside `running: true` (absent when it is false).
    package var running: Running?
    package var last: Last?

    package init() {}

    enum CodingKeys: String, CodingKey {
        case running, received, total, elapsedMilliseconds = "elapsed_ms", ratePerSecond = "rate_per_s"
        case secondsLeft = "seconds_left", last
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if try c.decodeIfPresent(Bool.self, forKey: .running) == true {
            var running = Running()
            running.received = try c.decodeIfPresent(Int64.self, forKey: .received) ?? 0
            running.total = try c.decodeIfPresent(Int64.self, forKey: .total)
            running.elapsedMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .elapsedMilliseconds) ?? 0
            running.ratePerSecond = try c.decodeIfPresent(Int64.self, forKey: .ratePerSecond)
            running.secondsLeft = try c.decodeIfPresent(Int64.self, forKey: .secondsLeft)
            self.running = running
        }
        last = try c.decodeIfPresent(Last.self, forKey: .last)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(running != nil, forKey: .running)
        if let running {
            try c.encode(running.received, forKey: .received)
            try c.encode(running.total, forKey: .total)
            try c.encode(running.elapsedMilliseconds, forKey: .elapsedMilliseconds)
            try c.encode(running.ratePerSecond, forKey: .ratePerSecond)
            try c.encode(running.secondsLeft, forKey: .secondsLeft)
        }
        try c.encodeIfPresent(last, forKey: .last)
    }
}

/// The consent lane as the edge sees it (in the edge's `/status`).
package struct ConsentStatus: Codable, Sendable, Equatable {
    package var laneLSN: Int64 = 0
    package var patientsWithRules: Int64 = 0
    package var blocks: Int64 = 0
    package var purgedEntries: Int64 = 0
    package var propagationSamples: Int64 = 0
    @Nullable package var propagationP50Milliseconds: Int64?
    @Nullable package var propagationP99Milliseconds: Int64?
    @Nullable package var propagationMaxMilliseconds: Int64?
    @Nullable package var lastBlockLSN: Int64?
    @Nullable package var mainLSNAtLastBlock: Int64?

    package init() {}

    enum CodingKeys: String, CodingKey {
        case laneLSN = "lane_lsn", patientsWithRules = "patients_with_rules", blocks, purgedEntries = "purged_entries"
        case propagationSamples = "propagation_samples", propagationP50Milliseconds = "propagation_p50_ms"
        case propagationP99Milliseconds = "propagation_p99_ms", propagationMaxMilliseconds = "propagation_max_ms"
        case lastBlockLSN = "last_block_lsn", mainLSNAtLastBlock = "main_lsn_at_last_block"
    }
}

/// `<data_dir>/listening.json`: the port each listener is bound to, by listener name (`api`,
/// `peer`, `metrics`), written once every listener is up.
package struct ListeningFile: Codable, Sendable, Equatable {
    package var ports: [String: Int]

    package init(ports: [String: Int]) { self.ports = ports }

    package init(from decoder: any Decoder) throws { ports = try [String: Int](from: decoder) }
    package func encode(to encoder: any Encoder) throws { try ports.encode(to: encoder) }

    package static func read(dataDir: String) -> ListeningFile? {
        FileManager.default.contents(atPath: dataDir + "/listening.json").flatMap { Contract.decode(ListeningFile.self, from: $0) }
    }

    /// Written beside and renamed: a reader never sees half a file.
    package func write(dataDir: String) {
        let path = dataDir + "/listening.json"
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: Data(Contract.encode(self) + [0x0A])) else { return }
        rename(path + ".tmp", path)
    }
}

/// What an edge POSTs to `/replication/v1/audit-anchor`: its audit chain's length and head hash.
package struct AuditAnchor: Codable, Sendable, Equatable {
    /// The node the sending certificate names (older origins need it in the body).
    package var node: String?
    package var count: Int64
    /// 64 hex digits.
    package var head: String

    package init(node: String?, count: Int64, head: String) {
        self.node = node
        self.count = count
        self.head = head
    }

    /// The head as 32 bytes, or nil when it is not 64 hex digits.
    package var headHash: [UInt8]? { Hex.decode(head).flatMap { $0.count == 32 ? $0 : nil } }
}

/// The origin's 200 to an anchor.
package struct AnchorAcknowledgement: Codable, Sendable, Equatable {
    package var acknowledged: Int64

    package init(acknowledged: Int64) { self.acknowledged = acknowledged }
}
