import EdgeCacheCore
import Foundation
import Synchronization

/// The matches of a search as they were when it began, so that following its `next` links
/// never skips or repeats a resource that existed then, however the data changes underneath
/// (R4 3.1.1.6 paging; HAPI FHIR keeps a search's result list the same way). A search with
/// more than one page keeps the ids of all its matches, in order, under a random token its
/// links carry (`_snapshot`); a page of it reads those resources by id, as they are now,
/// through the same backend, scopes and consent. A snapshot belongs to the tenant and identity
/// that made it, lives ``idleSeconds`` after its last use and is dropped, least recently used
/// first, beyond ``maxHeldIDs`` in all; a link to a dropped one gets 410 (search again).
package final class SearchSnapshots: Sendable {
    /// Most matches a snapshot holds; a search with more pages by offset, and says so.
    package static let maxMatches = 10_000
    /// Most ids held over all snapshots (about 50 bytes each).
    static let maxHeldIDs = 2_000_000
    static let idleSeconds: Int64 = 600

    package struct Snapshot: Sendable {
        package var type: String
        package var tenant: String
        package var identity: ClientIdentity
        /// The query as parsed (links and `_include` of every page follow it).
        package var query: SearchQuery
        /// What the links name after the base: the type, or `Patient/id/Type` for a compartment search.
        package var linkPath: String
        package var ids: [String]
        /// Whether the first answer gave a total (a compartment-limited search does not).
        package var showsTotal: Bool
        var lastUsed: Int64
    }

    private let state = Mutex<(snapshots: [String: Snapshot], held: Int)>(([:], 0))

    package init() {}

    /// Keeps `ids` (every match of `query`, in order) and returns the token that names them.
    package func add(
        _ ids: [String], query: SearchQuery, type: String, linkPath: String, showsTotal: Bool, caller: FHIRCaller, now: Int64
    ) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = Base64URL.encode(bytes)
        state.withLock { state in
            state.snapshots[token] = Snapshot(
                type: type, tenant: caller.tenant, identity: caller.identity, query: query, linkPath: linkPath, ids: ids,
                showsTotal: showsTotal,
                lastUsed: now)
            state.held += ids.count
            Self.expire(&state, now: now)
        }
        return token
    }

    /// The snapshot `token` names, if it is still held and belongs to `caller` and `type`.
    package func snapshot(_ token: String, type: String, caller: FHIRCaller, now: Int64) -> Snapshot? {
        state.withLock { state in
            Self.expire(&state, now: now)
            guard var snapshot = state.snapshots[token], snapshot.type == type, snapshot.tenant == caller.tenant,
                snapshot.identity == caller.identity
            else { return nil }
            snapshot.lastUsed = now
            state.snapshots[token] = snapshot
            return snapshot
        }
    }

    /// Snapshots held now (for tests and metrics).
    package var count: Int { state.withLock { $0.snapshots.count } }

    private static func expire(_ state: inout (snapshots: [String: Snapshot], held: Int), now: Int64) {
        for (token, snapshot) in state.snapshots where now - snapshot.lastUsed > idleSeconds * 1000 {
            state.held -= snapshot.ids.count
            state.snapshots[token] = nil
        }
        guard state.held > maxHeldIDs else { return }
        for (token, snapshot) in state.snapshots.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            guard state.held > maxHeldIDs else { break }
            state.held -= snapshot.ids.count
            state.snapshots[token] = nil
        }
    }
}
