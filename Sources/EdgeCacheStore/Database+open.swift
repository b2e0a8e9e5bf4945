import Foundation
import GRDB

/// Opens SQLite databases the way every EdgeCache store needs them.
enum SQLiteFile {
    /// A WAL `DatabasePool` with `synchronous=FULL` on the writer and temp storage in memory (so
    /// no plaintext ever reaches a temp file).
    /// - Parameter cacheMiB: SQLite's page cache per connection (nil: SQLite's 2 MiB, and no
    ///   memory map). The edge gives its connections more, and maps the file (up to 2 GiB), so a
    ///   search's index probes and row lookups read pages in place instead of copying each from
    ///   the OS again.
    static func openPool(path: String, readers: Int = 4, cacheMiB: Int? = nil) throws -> DatabasePool {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        var configuration = Configuration()
        configuration.maximumReaderCount = readers
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            if let cacheMiB {
                try db.execute(sql: "PRAGMA cache_size = -\(cacheMiB * 1024)")
                // Pages read in place from the OS's cache of the file (no read call and copy per page).
                try db.execute(sql: "PRAGMA mmap_size = \(1 << 31 - 1)")
            }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        chmod(path, 0o600)
        return pool
    }
}
