import EdgeCacheCore
import EdgeCacheStore

/// The authenticated caller of a FHIR request.
package struct FHIRCaller: Sendable {
    /// The tenant, from the certificate (never from a header).
    package var tenant: String
    package var identity: ClientIdentity
    /// `https://host:port/fhir`, for absolute links and Location headers.
    package var baseURL: String
    package var requestID: String
    /// The reason given for emergency (break-glass) access, from `X-EdgeCache-Break-Glass`;
    /// lets a treatment request read what consent would otherwise block, and is audited.
    package var breakGlassReason: String?

    package init(tenant: String, identity: ClientIdentity, baseURL: String, requestID: String, breakGlassReason: String? = nil) {
        self.tenant = tenant
        self.identity = identity
        self.baseURL = baseURL
        self.requestID = requestID
        self.breakGlassReason = breakGlassReason
    }
}

/// Where a cached-path answer came from, rendered once as `Cache-Status` (RFC 9211) and `Age`,
/// and read as a value by the audit trail and the metrics.
package struct CacheFacts: Sendable, Equatable {
    package enum Outcome: Sendable, Equatable {
        /// Served from the edge's cache.
        case hit
        /// The caller's own write, queued in the outbox (`detail="pending-write"`).
        case pendingWrite
        /// Not held: fetched from the origin (`fwd=miss`), and kept when `stored`.
        case miss(stored: Bool)
        /// A search or history the origin answered (`fwd=uri-miss`).
        case uriMiss
        /// Past its TTL and revalidated at the origin, which answered `originStatus` (304: the
        /// entry is confirmed; 200: a new version, kept when `stored`).
        case revalidated(originStatus: Int, stored: Bool)
    }

    package var outcome: Outcome
    /// Seconds of freshness left (negative: past the TTL); nil when not stated.
    package var ttl: Int?
    /// Why an entry is served as it is: the link state (`origin-unreachable`, …), `origin-error`,
    /// `version` (a version never changes).
    package var detail: String?
    /// Seconds the response may be out of date (the `Age` header).
    package var age: Int?

    package init(_ outcome: Outcome, ttl: Int? = nil, detail: String? = nil, age: Int?) {
        self.outcome = outcome
        self.ttl = ttl
        self.detail = detail
        self.age = age
    }

    /// The `Cache-Status` member, e.g. `edgecache; hit; ttl=298`.
    package var cacheStatus: String {
        var text = "edgecache"
        switch outcome {
        case .hit: text += "; hit"
        case .pendingWrite: text += "; hit"
        case .miss: text += "; fwd=miss"
        case .uriMiss: text += "; fwd=uri-miss"
        case .revalidated(let status, _): text += "; fwd=stale; fwd-status=\(status)"
        }
        if let ttl { text += "; ttl=\(ttl)" }
        switch outcome {
        case .miss(stored: true), .revalidated(_, stored: true): text += "; stored"
        case .pendingWrite: text += "; detail=\"pending-write\""
        default: break
        }
        if let detail { text += "; detail=\"\(detail)\"" }
        return text
    }

    /// How a read counts in the metrics: hit, miss, stale (past its TTL or with the origin
    /// away), revalidated, pending.
    package var result: String {
        switch outcome {
        case .pendingWrite: return "pending"
        case .miss: return "miss"
        case .revalidated: return "revalidated"
        case .hit, .uriMiss:
            if (ttl ?? 0) < 0 || detail == "origin-unreachable" { return "stale" }
            return "hit"
        }
    }

    /// Whether answering it took a request to the origin.
    package var askedOrigin: Bool {
        switch outcome {
        case .miss, .uriMiss, .revalidated: return true
        case .hit, .pendingWrite: return false
        }
    }
}

/// A resource answer (read, vread, write representation).
package struct ResourceAnswer: Sendable {
    package var resource: ResourceVersion
    package var cache: CacheFacts?
    /// Set when the answer is the caller's own write, still in the edge's outbox.
    package var outbox: OutboxFacts?
    package init(resource: ResourceVersion, cache: CacheFacts? = nil, outbox: OutboxFacts? = nil) {
        self.resource = resource
        self.cache = cache
        self.outbox = outbox
    }
}

/// A search or history answer.
package struct ListAnswer: Sendable {
    package var page: SearchPage
    package var cache: CacheFacts?
    package init(page: SearchPage, cache: CacheFacts? = nil) {
        self.page = page
        self.cache = cache
    }
}

/// A write answer.
package struct WriteAnswer: Sendable {
    /// HTTP status to relay (200, 201, 204; 202 when queued).
    package var status: Int
    /// The resulting version; nil when a delete changed nothing.
    package var resource: ResourceVersion?
    /// The key the write was made under, echoed as `Idempotency-Key` (edge).
    package var idempotencyKey: String?
    /// The answer is the one stored for an earlier request with the same key (origin,
    /// `Idempotent-Replayed: true`).
    package var replayed: Bool
    /// Accepted into the edge's outbox, not yet committed at the origin (202).
    package var outbox: OutboxFacts?

    package init(status: Int, resource: ResourceVersion?, idempotencyKey: String? = nil, replayed: Bool = false, outbox: OutboxFacts? = nil)
    {
        self.status = status
        self.resource = resource
        self.idempotencyKey = idempotencyKey
        self.replayed = replayed
        self.outbox = outbox
    }

    /// Accepted into the edge's outbox, not yet committed at the origin (202).
    package var queued: Bool { outbox != nil }
}

/// What serves FHIR interactions for a node: the origin's store, or the edge's cache in front
/// of the origin. Errors are ``EdgeCacheCore/FHIRError``; anything else becomes a 500.
package protocol FHIRBackend: Sendable {
    /// Current version; a deleted resource answers with its tombstone (the responder sends 410).
    func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer
    func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer
    func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer
    func search(_ caller: FHIRCaller, type: String, query: SearchQuery) async throws -> ListAnswer
    func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer
}
