import EdgeCacheCore
import EdgeCacheStore

/// The authenticated caller of a FHIR request.
public struct FHIRCaller: Sendable {
    /// The tenant, from the certificate (never from a header).
    public var tenant: String
    public var identity: ClientIdentity
    /// `https://host:port/fhir`, for absolute links and Location headers.
    public var baseURL: String
    public var requestID: String
    /// The reason given for emergency (break-glass) access, from `X-EdgeCache-Break-Glass`;
    /// lets a treatment request read what consent would otherwise block, and is audited.
    public var breakGlassReason: String?

    public init(tenant: String, identity: ClientIdentity, baseURL: String, requestID: String, breakGlassReason: String? = nil) {
        self.tenant = tenant
        self.identity = identity
        self.baseURL = baseURL
        self.requestID = requestID
        self.breakGlassReason = breakGlassReason
    }
}

/// Cache facts about a response, rendered as `Cache-Status` and `Age`.
public struct CacheFacts: Sendable, Equatable {
    /// The full RFC 9211 member, e.g. `edgecache; hit; ttl=298`.
    public var cacheStatus: String
    /// Seconds the response may be out of date (the `Age` header).
    public var age: Int?

    public init(cacheStatus: String, age: Int?) {
        self.cacheStatus = cacheStatus
        self.age = age
    }
}

/// A resource answer (read, vread, write representation).
public struct ResourceAnswer: Sendable {
    public var resource: ResourceVersion
    public var cache: CacheFacts?
    public var extraHeaders: [(String, String)]
    public init(resource: ResourceVersion, cache: CacheFacts? = nil, extraHeaders: [(String, String)] = []) {
        self.resource = resource
        self.cache = cache
        self.extraHeaders = extraHeaders
    }
}

/// A search or history answer.
public struct ListAnswer: Sendable {
    public var page: SearchPage
    public var cache: CacheFacts?
    public init(page: SearchPage, cache: CacheFacts? = nil) {
        self.page = page
        self.cache = cache
    }
}

/// A write answer.
public struct WriteAnswer: Sendable {
    /// HTTP status to relay (200, 201, 204).
    public var status: Int
    /// The resulting version; nil when a delete changed nothing.
    public var resource: ResourceVersion?
    public var extraHeaders: [(String, String)]
    /// Accepted into the edge's outbox, not yet committed at the origin (202).
    public var queued: Bool
    public init(status: Int, resource: ResourceVersion?, extraHeaders: [(String, String)] = [], queued: Bool = false) {
        self.status = status
        self.resource = resource
        self.extraHeaders = extraHeaders
        self.queued = queued
    }
}

/// What serves FHIR interactions for a node: the origin's store, or the edge's cache in front
/// of the origin. Errors are ``EdgeCacheCore/FHIRError``; anything else becomes a 500.
public protocol FHIRBackend: Sendable {
    /// Current version; a deleted resource answers with its tombstone (the responder sends 410).
    func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer
    func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer
    func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer
    func search(_ caller: FHIRCaller, type: String, query: SearchQuery, rawQuery: String?) async throws -> ListAnswer
    func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer
}
