import EdgeCacheCore

/// A write at the origin.
package enum WriteOperation: Sendable {
    /// Create with a server-assigned id.
    case create(type: String, resource: JSONObject)
    /// Update (or create with the given id). `ifMatch`: the version the client based it on.
    case update(type: String, id: String, resource: JSONObject, ifMatch: Int64?)
    /// Delete. A delete of a missing or deleted resource changes nothing.
    case delete(type: String, id: String, ifMatch: Int64?)
}

/// An Idempotency-Key claim on a write: the key and a fingerprint of the request it names.
package struct IdempotencyClaim: Sendable {
    package var key: String
    /// The request's identity (method, type, id and parsed body, not If-Match: see
    /// ``WriteOperation/fingerprintBytes``); a different one under the same key is refused with 422.
    package var fingerprint: [UInt8]

    package init(key: String, fingerprint: [UInt8]) {
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// One write of a batch (`POST /replication/v1/writes`), with its idempotency claim.
package struct BatchWrite: Sendable {
    package var operation: WriteOperation
    package var claim: IdempotencyClaim

    package init(operation: WriteOperation, claim: IdempotencyClaim) {
        self.operation = operation
        self.claim = claim
    }
}

/// What a committed write produced.
package struct WriteResult: Sendable {
    /// The new version (a tombstone for a delete); nil when a delete changed nothing.
    package var version: ResourceVersion?
    /// Whether the write created the resource (201 rather than 200).
    package var created: Bool
    /// The change's LSN, 0 when nothing changed (or when this is a replay).
    package var lsn: Int64
    /// Whether this answers a repeated Idempotency-Key with the stored response.
    package var replayed: Bool

    package init(version: ResourceVersion?, created: Bool, lsn: Int64, replayed: Bool = false) {
        self.version = version
        self.created = created
        self.lsn = lsn
        self.replayed = replayed
    }
}

/// A change as the stream carries it.
package struct Change: Sendable {
    package var lsn: Int64
    package var resource: ResourceVersion

    package init(lsn: Int64, resource: ResourceVersion) {
        self.lsn = lsn
        self.resource = resource
    }
}

/// The origin's system of record: current resources per tenant, full history, and a change log
/// whose LSN is assigned in the same transaction as the write.
///
/// One implementation today (``SQLiteOriginStore``); PostgreSQL can take its place later without
/// changing the edges or the wire protocol.
package protocol OriginStore: Sendable {
    /// The newest LSN committed (any tenant): for the origin's own operator only, as it shows
    /// the write volume of every tenant.
    var headLSN: Int64 { get }
    /// The tenant's position: the LSN of its newest change (0 if it has none). This is the only
    /// head an edge or a client of the tenant is shown.
    func tenantHeadLSN(_ tenant: String) -> Int64

    /// The current version of a resource, including a tombstone if it was deleted.
    func read(tenant: String, type: String, id: String) async throws -> ResourceVersion?
    /// One version of a resource.
    func vread(tenant: String, type: String, id: String, version: Int64) async throws -> ResourceVersion?
    /// Every version of a resource, newest first.
    func history(tenant: String, type: String, id: String) async throws -> [ResourceVersion]
    /// Current, non-deleted resources of a type matching `query`.
    func search(tenant: String, type: String, query: SearchQuery) async throws -> SearchPage
    /// Rewrites every resource's search terms when they are of an older scheme
    /// (``SearchTerms/version``), online; nil when they were current. `progress` gets
    /// (done, total) after each batch.
    func reindexSearchTerms(batchSize: Int, progress: @Sendable (Int, Int) -> Void) async throws -> Int?
    /// Commits a write, its history row, its index terms, its change-log row and (with a claim)
    /// its idempotency record in one transaction. A claim already recorded with the same
    /// fingerprint returns the stored response and changes nothing.
    /// - Throws: ``FHIRError`` 412 when `ifMatch` is not the current version; 422 when the
    ///   claim's key was used for a different request.
    func write(tenant: String, _ operation: WriteOperation, idempotency: IdempotencyClaim?) async throws -> WriteResult
    /// Commits many writes in one transaction (group commit); each succeeds or fails on its own.
    func writeBatch(tenant: String, _ writes: [BatchWrite]) async throws -> [Result<WriteResult, FHIRError>]
    /// Forgets idempotency records created before `cutoff` (epoch ms); returns how many.
    func expireIdempotencyKeys(before cutoff: Int64) async throws -> Int
    /// Changes of `tenant` after `lsn`, oldest first, at most `limit`; with a lane, only that
    /// lane's changes (the consent lane carries Consent changes). The batch is also bounded by
    /// its resources' JSON bytes: it ends with the change that reaches `maxBytes` (so it always
    /// holds at least one change, and exceeds `maxBytes` by at most one resource).
    /// - Throws: ``LogGoneError`` when the log no longer reaches back to `lsn`.
    func changes(tenant: String, after lsn: Int64, limit: Int, maxBytes: Int, lane: ChangeLane?) async throws -> [Change]
    /// A consistent snapshot of the tenant's current resources, delivered in pages.
    func snapshot(tenant: String) async throws -> any OriginSnapshot
    /// The change log's epoch: made when the store was created or restored (see ``LogEpoch``).
    var logEpoch: LogEpoch { get }
    /// Drops change-log rows so that at most `keep` remain; returns the new floor.
    func compactLog(keep: Int) async throws -> Int64
}

/// The lanes of the change stream: everything, and the consent lane that edges follow beside
/// the main stream so consent changes outrun a backlog.
package enum ChangeLane: Int, Sendable {
    case main = 0
    case consent = 1

    package static func of(type: String) -> ChangeLane { type == "Consent" ? .consent : .main }
}

extension OriginStore {
    /// Every change of `tenant` after `lsn` (at most `limit`, no byte bound).
    package func changes(tenant: String, after lsn: Int64, limit: Int) async throws -> [Change] {
        try await changes(tenant: tenant, after: lsn, limit: limit, maxBytes: .max, lane: nil)
    }

    /// Changes of one lane (or all) after `lsn`, at most `limit`, with no byte bound.
    package func changes(tenant: String, after lsn: Int64, limit: Int, lane: ChangeLane?) async throws -> [Change] {
        try await changes(tenant: tenant, after: lsn, limit: limit, maxBytes: .max, lane: lane)
    }

    /// A write without an idempotency claim.
    package func write(tenant: String, _ operation: WriteOperation) async throws -> WriteResult {
        try await write(tenant: tenant, operation, idempotency: nil)
    }
}

/// A point-in-time view of one tenant's current resources.
package protocol OriginSnapshot: Sendable {
    /// The LSN the snapshot reflects.
    var lsn: Int64 { get }
    /// How many resources it holds (its pages add up to this).
    var count: Int64 { get }
    /// The next page of resources (empty at the end): at most `limit`, ending with the resource
    /// whose JSON reaches `maxBytes` (at least one, exceeding `maxBytes` by at most one resource).
    func next(limit: Int, maxBytes: Int) async throws -> [ResourceVersion]
}

extension OriginSnapshot {
    /// The next page of at most `limit` resources, with no byte bound.
    package func next(limit: Int) async throws -> [ResourceVersion] { try await next(limit: limit, maxBytes: .max) }
}

extension WriteOperation {
    /// The bytes an Idempotency-Key fingerprint covers: method, type, id and the resource as
    /// parsed (not If-Match, so a replay based on another version is still the same request).
    package var fingerprintBytes: [UInt8] {
        switch self {
        case .create(let type, let resource):
            return Array("POST|\(type)||".utf8) + JSONValue.object(resource).serialized()
        case .update(let type, let id, var resource, _):
            resource["id"] = nil
            return Array("PUT|\(type)|\(id)|".utf8) + JSONValue.object(resource).serialized()
        case .delete(let type, let id, _):
            return Array("DELETE|\(type)|\(id)|".utf8)
        }
    }
}
