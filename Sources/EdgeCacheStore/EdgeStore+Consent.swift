import EdgeCacheCore
import Foundation
import GRDB

extension EdgeStore {
    /// The consent lane's checkpoint (0 if it never ran).
    package func consentCheckpoint() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'consent_lsn'") ?? 0 }
    }

    /// Stores Consent versions from the priority lane and moves its checkpoint, in one
    /// transaction. The main stream delivers the same versions later: they are then no-ops.
    package func applyConsentLane(_ changes: [Change], checkpoint: Int64) async throws {
        let sealed = try changes.map { try sealForCache($0.resource) }
        let now = clock.nowMillis()
        try await pool.write { db in
            for (change, s) in zip(changes, sealed) {
                _ = try self.upsertSealed(db, change.resource, rkey: s.rkey, blob: s.blob, terms: s.terms, now: now)
            }
            try db.execute(
                sql: """
                    INSERT INTO meta(key, value) VALUES ('consent_lsn', ?)
                    ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)
                    """, arguments: [checkpoint])
        }
    }

    /// Every cached Consent (current versions), to rebuild the consent rules at start.
    package func cachedConsents() async throws -> [ResourceVersion] {
        var all: [ResourceVersion] = []
        var query = SearchQuery()
        query.count = 1000
        while true {
            let page = try await search(type: "Consent", query: query)
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
        let keys = self.keys
        let patientKey = Data(ResourceBlob.key(keys, type: "Patient", id: patient))
        let consentType = Data(ResourceBlob.typeKey(keys, type: "Consent"))
        let termKeys = ResourceTypes.all.sorted().map { Data(ResourceBlob.termKey(keys, type: $0, term: "patient|Patient/\(patient)")) }
        return try await pool.write { db in
            var rkeys: Set<Data> = [patientKey]
            for term in termKeys {
                rkeys.formUnion(try Data.fetchAll(db.cachedStatement(sql: "SELECT rkey FROM terms WHERE term = ?"), arguments: [term]))
            }
            var removed = 0
            for rkey in rkeys {
                try db.cachedStatement(sql: "DELETE FROM entries WHERE rkey = ? AND tkey != ?").execute(arguments: [rkey, consentType])
                let count = db.changesCount
                if count > 0 {
                    self.hot.forget(rkey)
                    removed += count
                    try db.cachedStatement(sql: "DELETE FROM terms WHERE rkey = ?").execute(arguments: [rkey])
                }
            }
            return removed
        }
    }
}
