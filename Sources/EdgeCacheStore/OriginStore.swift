import EdgeCacheCore

/// A write at the origin.
public enum WriteOperation: Sendable {
    /// Create with a server-assigned id.
    case create(type: String, resource: JSONObject)
    /// Update (or create with the given id). `ifMatch`: the version the client based it on.
    case update(type: String, id: String, resource: JSONObject, ifMatch: Int64?)
    /// Delete. A delete of a missing or deleted resource changes nothing.
    case delete(type: String, id: String, ifMatch: Int64?)
}

/// What a committed write produced.
public struct WriteResult: Sendable {
    /// The new version (a tombstone for a delete); nil when a delete changed nothing.
    public var version: ResourceVersion?
    /// Whether the write created the resource (201 rather than 200).
    public var created: Bool
    /// The change's LSN, 0 when nothing changed.
    public var lsn: Int64

    public init(version: ResourceVersion?, created: Bool, lsn: Int64) {
        self.version = version
        self.created = created
        self.lsn = lsn
    }
}

/// A change as the stream carries it.
public struct Change: Sendable {
    public var lsn: Int64
    public var resource: ResourceVersion

    public init(lsn: Int64, resource: ResourceVersion) {
        self.lsn = lsn
        self.resource = resource
    }
}

/// The origin's system of record: current resources per tenant, full history, and a change log
/// whose LSN is assigned in the same transaction as the write.
///
/// One implementation today (``SQLiteOriginStore``); PostgreSQL can take its place later without
/// changing the edges or the wire protocol.
public protocol OriginStore: Sendable {
    /// The newest LSN committed (any tenant).
    var headLSN: Int64 { get }

    /// The current version of a resource, including a tombstone if it was deleted.
    func read(tenant: String, type: String, id: String) async throws -> ResourceVersion?
    /// One version of a resource.
    func vread(tenant: String, type: String, id: String, version: Int64) async throws -> ResourceVersion?
    /// Every version of a resource, newest first.
    func history(tenant: String, type: String, id: String) async throws -> [ResourceVersion]
    /// Current, non-deleted resources of a type matching `query`.
    func search(tenant: String, type: String, query: SearchQuery) async throws -> SearchPage
    /// Commits a write, its history row, its index terms and its change-log row in one transaction.
    /// - Throws: ``FHIRError`` 412 when `ifMatch` is not the current version.
    func write(tenant: String, _ operation: WriteOperation) async throws -> WriteResult
    /// Changes of `tenant` after `lsn`, oldest first, at most `limit`.
    /// - Throws: ``LogGoneError`` when the log no longer reaches back to `lsn`.
    func changes(tenant: String, after lsn: Int64, limit: Int) async throws -> [Change]
    /// A consistent snapshot of the tenant's current resources, delivered in pages.
    func snapshot(tenant: String) async throws -> any OriginSnapshot
    /// Drops change-log rows so that at most `keep` remain; returns the new floor.
    func compactLog(keep: Int) async throws -> Int64
}

/// A point-in-time view of one tenant's current resources.
public protocol OriginSnapshot: Sendable {
    /// The LSN the snapshot reflects.
    var lsn: Int64 { get }
    /// The next page of resources (empty at the end).
    func next(limit: Int) async throws -> [ResourceVersion]
}
