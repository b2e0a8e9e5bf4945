import GRDB

extension SQLiteOriginStore {
    /// The origin database's schema as named migrations, applied in order when the store
    /// opens. Files from before this migrator have no `grdb_migrations` table, so every
    /// migration runs on them; each is a no-op where its change is already there. Append new
    /// migrations here; never edit a released one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-tables") { db in
            try db.execute(sql: DataKeys.schema)
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS resources(
                        tenant TEXT NOT NULL, rkey BLOB NOT NULL, tkey BLOB NOT NULL, version INTEGER NOT NULL,
                        last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, PRIMARY KEY(tenant, rkey)) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS resources_by_type ON resources(tenant, tkey, deleted, last_updated);
                    CREATE TABLE IF NOT EXISTS history(
                        tenant TEXT NOT NULL, rkey BLOB NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
                        deleted INTEGER NOT NULL, blob BLOB NOT NULL, PRIMARY KEY(tenant, rkey, version)) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS terms(
                        tenant TEXT NOT NULL, term BLOB NOT NULL, rkey BLOB NOT NULL,
                        PRIMARY KEY(tenant, term, rkey)) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS terms_by_resource ON terms(tenant, rkey);
                    CREATE TABLE IF NOT EXISTS changes(
                        lsn INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, rkey BLOB NOT NULL,
                        version INTEGER NOT NULL);
                    CREATE INDEX IF NOT EXISTS changes_by_tenant ON changes(tenant, lsn);
                    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS idempotency(
                        tenant TEXT NOT NULL, key_hash BLOB NOT NULL, fingerprint BLOB NOT NULL, status INTEGER NOT NULL,
                        rkey BLOB NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL,
                        PRIMARY KEY(tenant, key_hash)) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency(created_at);
                    INSERT OR IGNORE INTO meta(key, value) VALUES ('log_floor', 0);
                    """)
        }
        // The consent lane: Consent changes are also readable on their own, ahead of the rest.
        migrator.registerMigration("v2-consent-lane") { db in
            if try !db.columns(in: "changes").contains(where: { $0.name == "lane" }) {
                try db.execute(sql: "ALTER TABLE changes ADD COLUMN lane INTEGER NOT NULL DEFAULT 0")
            }
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS changes_by_lane ON changes(tenant, lane, lsn) WHERE lane > 0")
        }
        // Per-tenant floors: the newest change of each tenant that compaction removed, so a
        // tenant's log reaches back as far as its own changes do, and its head survives
        // compaction. A database compacted before this table existed starts every tenant at
        // the global floor (what it answered 410 below before).
        migrator.registerMigration("v3-tenant-log-floor") { db in
            guard try !db.tableExists("tenant_log_floor") else { return }
            try db.execute(sql: "CREATE TABLE tenant_log_floor(tenant TEXT PRIMARY KEY, lsn INTEGER NOT NULL) WITHOUT ROWID")
            try db.execute(
                sql: """
                    INSERT INTO tenant_log_floor(tenant, lsn)
                    SELECT DISTINCT d.tenant, m.value FROM data_keys d, meta m WHERE m.key = 'log_floor' AND m.value > 0
                    """)
        }
        // The scheme of the search terms (``SearchTerms/version``); older terms are re-indexed online.
        migrator.registerMigration("v4-search-index") { db in
            try db.execute(sql: SearchIndexState.migration(table: "resources"))
        }
        return migrator
    }
}
