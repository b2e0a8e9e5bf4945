import GRDB

extension EdgeStore {
    /// The edge database's schema as named migrations, applied in order when the store opens.
    ///
    /// Every file layout an edge has written is covered: files from before this migrator have
    /// no `grdb_migrations` table, so all migrations run on them, and each is written to be a
    /// no-op where its change is already there (`IF NOT EXISTS`, a column added only when
    /// missing). A new migration is appended here, never edited once released.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-tables") { db in
            try db.execute(sql: DataKeys.schema)
            try db.execute(sql: OutboxTable.schema)
            for prefix in ["", "staged_"] {
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS \(prefix)entries(
                            rkey BLOB PRIMARY KEY, tkey BLOB NOT NULL, version INTEGER NOT NULL,
                            last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, stored_at INTEGER NOT NULL,
                            blob BLOB NOT NULL) WITHOUT ROWID;
                        CREATE INDEX IF NOT EXISTS \(prefix)entries_by_type ON \(prefix)entries(tkey, deleted, last_updated);
                        CREATE TABLE IF NOT EXISTS \(prefix)terms(term BLOB NOT NULL, rkey BLOB NOT NULL,
                            PRIMARY KEY(term, rkey)) WITHOUT ROWID;
                        CREATE INDEX IF NOT EXISTS \(prefix)terms_by_resource ON \(prefix)terms(rkey);
                        """)
            }
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                    INSERT OR IGNORE INTO meta(key, value) VALUES ('checkpoint', 0), ('events_applied', 0),
                        ('events_skipped', 0), ('bootstraps', 0), ('caught_up_at', 0);
                    """)
        }
        migrator.registerMigration("v2-quarantine") { db in
            try db.execute(sql: CacheEntries.quarantineSchema)
        }
        migrator.registerMigration("v3-eviction") { db in
            // The staging table of a snapshot bootstrap keeps the same columns (it is swapped in whole).
            for table in ["entries", "staged_entries"] where try !db.columns(in: table).contains(where: { $0.name == "accessed_at" }) {
                try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN accessed_at INTEGER NOT NULL DEFAULT 0")
            }
            try db.execute(
                sql: """
                    CREATE INDEX IF NOT EXISTS entries_by_access ON entries(tkey, accessed_at);
                    INSERT OR IGNORE INTO meta(key, value) VALUES ('evicted_budget', 0), ('evicted_retention', 0);
                    """)
        }
        migrator.registerMigration("v4-policy") { db in
            try db.execute(sql: PolicyTable.schema)
        }
        // The scheme of the search terms (``SearchTerms/version``); older terms are re-indexed online.
        migrator.registerMigration("v5-search-index") { db in
            try db.execute(sql: SearchIndexState.migration(table: "entries"))
        }
        return migrator
    }
}
