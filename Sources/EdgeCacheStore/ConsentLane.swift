import EdgeCacheCore
import Foundation
import GRDB

/// The consent lane: Consent versions the origin sends on a priority lane ahead of the main
/// stream, with the lane's own checkpoint (meta `consent_lsn`), and the purge of a patient's
/// compartment when a consent blocks it. Entries are written and removed through
/// ``CacheEntries`` inside this type's transactions.
package final class ConsentLane: Sendable {
    let core: EdgeDatabase
    let entries: CacheEntries

    init(core: EdgeDatabase, entries: CacheEntries) {
        self.core = core
        self.entries = entries
    }

    /// The consent lane's checkpoint (0 if it never ran).
    package func checkpoint() async throws -> Int64 {
        try await core.pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'consent_lsn'") ?? 0 }
    }

    /// Stores Consent versions from the priority lane and moves its checkpoint, in one
    /// transaction. The main stream delivers the same versions later: they are then no-ops.
    package func apply(_ changes: [Change], checkpoint: Int64) async throws {
        let entries = self.entries
        let sealed = try changes.map { try entries.sealForCache($0.resource) }
        let now = core.clock.nowMillis()
        try await core.pool.write { db in
            for (change, s) in zip(changes, sealed) {
                _ = try entries.upsertSealed(db, change.resource, rkey: s.rkey, blob: s.blob, terms: s.terms, now: now)
            }
            try db.execute(
                sql: """
                    INSERT INTO meta(key, value) VALUES ('consent_lsn', ?)
                    ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)
                    """, arguments: [checkpoint])
        }
    }

    /// Sets the consent lane's checkpoint to `lsn` even if it is lower (a lane checkpoint the
    /// origin's log does not reach any more, e.g. after a restore or with a damaged value).
    package func reset(to lsn: Int64) async throws {
        let counters = try await core.pool.write { db in
            try Self.setCheckpoint(db, to: lsn)
            return try EdgeDatabase.readCounters(db)
        }
        core.committed(counters)
    }

    /// Inside a write: sets the lane's checkpoint to `lsn`, lower or not (a snapshot swap sets
    /// it to the snapshot's LSN: the lane re-delivers any newer consent the swap replaced).
    static func setCheckpoint(_ db: Database, to lsn: Int64) throws {
        try db.execute(
            sql: "INSERT INTO meta(key, value) VALUES ('consent_lsn', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [lsn])
    }

    /// Every cached Consent (current versions), to rebuild the consent rules at start.
    package func cachedConsents() async throws -> [ResourceVersion] {
        var all: [ResourceVersion] = []
        var query = SearchQuery()
        query.count = 1000
        while true {
            let page = try await entries.search(type: "Consent", query: query)
            all += page.resources
            guard page.hasMore else { return all }
            query.offset += query.count
        }
    }

    /// Deletes the cached entries of a patient's compartment (the Patient itself and every
    /// resource whose `subject` or `patient` names it); Consent resources stay. Returns how
    /// many were removed. Queued writes are not touched.
    @discardableResult
    package func purgeCompartment(patient: String) async throws -> Int {
        let entries = self.entries
        let keys = entries.keys
        let patientKey = Data(ResourceBlob.key(keys, type: "Patient", id: patient))
        let consentType = Data(ResourceBlob.typeKey(keys, type: "Consent"))
        let termKeys = ResourceTypes.all.sorted().map { Data(ResourceBlob.termKey(keys, type: $0, term: "patient|Patient/\(patient)")) }
        return try await core.pool.write { db in
            var rkeys: Set<Data> = [patientKey]
            for term in termKeys {
                rkeys.formUnion(try entries.rkeys(db, term: term))
            }
            var removed = 0
            for rkey in rkeys {
                removed += try entries.remove(db, rkey: rkey, unlessType: consentType)
            }
            return removed
        }
    }
}
