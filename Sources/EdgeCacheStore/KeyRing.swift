import EdgeCacheCrypto
import Foundation
import GRDB
import Synchronization

/// One tenant's data keys as this process knows them: the current version (for new writes)
/// and older versions, loaded from `data_keys` the first time a blob sealed under them is met.
///
/// Another process (`edgecache keys rotate`) may add a version at any time. Readers meeting an
/// unknown version load it on demand; writers call ``refresh(_:)`` at the start of their write
/// transaction, which asks SQLite (`PRAGMA data_version`, no I/O) whether any other connection
/// committed since the last look and re-reads the current version only then. So a node seals
/// under a new version from its first write transaction after the rotation commits.
final class KeyRing: Sendable {
    let tenant: String
    private let kek: KeyEncryptionKey
    private let pool: DatabasePool
    private struct State {
        var current: TenantKeys
        var versions: [UInt32: TenantKeys]
        var dataVersion: Int64?
        var shredded: (any Error)?
    }
    private let state: Mutex<State>

    /// Loads (creating on first use) the tenant's current key inside `db`'s transaction.
    init(_ db: Database, pool: DatabasePool, tenant: String, kek: KeyEncryptionKey, now: Int64) throws {
        let current = try DataKeys.loadOrCreate(db, tenant: tenant, kek: kek, now: now)
        self.tenant = tenant
        self.kek = kek
        self.pool = pool
        self.state = Mutex(State(current: current, versions: [current.version: current], dataVersion: nil, shredded: nil))
    }

    /// The current keys as last seen (lookup keys never change; the version may lag a rotation
    /// made elsewhere until the next ``refresh(_:)``).
    var current: TenantKeys { state.withLock { $0.current } }

    /// Inside a write transaction: picks up a rotation or shred committed by another process.
    /// - Throws: if the tenant's keys were shredded.
    @discardableResult
    func refresh(_ db: Database) throws -> TenantKeys {
        let dataVersion = try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0
        let known = state.withLock { s -> (TenantKeys, (any Error)?)? in
            s.dataVersion == dataVersion ? (s.current, s.shredded) : nil
        }
        if let (current, shredded) = known {
            if let shredded { throw shredded }
            return current
        }
        guard let version = try DataKeys.currentVersion(db, tenant: tenant) else {
            let error: any Error
            do {
                try DataKeys.refuseIfShredded(db, tenant: tenant)
                error = StoreError("tenant \(tenant) has no data key any more")
            } catch let e {
                error = e
            }
            state.withLock {
                $0.shredded = error
                $0.versions = [:]
                $0.dataVersion = dataVersion
            }
            throw error
        }
        let keys = try keys(version: version, db: db)
        state.withLock {
            $0.current = keys
            $0.dataVersion = dataVersion
            $0.shredded = nil
        }
        return keys
    }

    /// The keys of one version, loaded from `data_keys` (through `db` if given, else a pool read).
    func keys(version: UInt32, db: Database? = nil) throws -> TenantKeys {
        if let keys = state.withLock({ $0.versions[version] }) { return keys }
        let load = { (db: Database) throws -> TenantKeys? in
            try DataKeys.load(db, tenant: self.tenant, version: version, kek: self.kek)
        }
        guard let loaded = try db.map(load) ?? pool.read(load) else {
            throw StoreError("data key v\(version) of tenant \(tenant) is gone (shredded or retired); the entry cannot be opened")
        }
        state.withLock { $0.versions[version] = loaded }
        return loaded
    }

    /// Opens a sealed blob under whichever version sealed it.
    func open(_ sealed: [UInt8], aad: [UInt8], db: Database? = nil) throws -> [UInt8] {
        guard let version = Sealer.keyVersion(of: sealed) else { throw CryptoError("unknown sealed blob format") }
        return try Sealer(keys: try keys(version: version, db: db)).open(sealed, aad: aad)
    }

    /// Makes the next ``refresh(_:)`` re-read the current version (after a change made through
    /// this very connection, which `PRAGMA data_version` does not report).
    func invalidate() {
        state.withLock { $0.dataVersion = nil }
    }

    /// Forgets every key held in memory (after a shred in this process).
    func forget(_ error: any Error) {
        state.withLock {
            $0.versions = [:]
            $0.shredded = error
            $0.dataVersion = nil
        }
    }
}
