import EdgeCacheCore
import Foundation
import GRDB

extension SQLiteOriginStore {
    /// Puts a copy of an origin store back in place of the store at `path`, with a new log
    /// epoch, for `edgecache restore` (the origin must be stopped).
    ///
    /// The copy is read with SQLite's backup API (so a copy that has its own `-wal` is read whole)
    /// into a temporary file beside `path`, checked (`PRAGMA integrity_check`), given a new
    /// ``LogEpoch`` and synced; then the store's stale `-wal` and `-shm` are removed (SQLite would
    /// otherwise replay them onto the copy) and the temporary file is renamed over `path`.
    /// - Returns: the new epoch and the copy's head LSN.
    package static func restore(from copy: String, to path: String) throws -> (epoch: LogEpoch, head: Int64) {
        guard FileManager.default.fileExists(atPath: copy) else { throw StoreError("no file at \(copy)") }
        let temp = path + ".restoring"
        for file in [temp, temp + "-journal", temp + "-wal", temp + "-shm"] { unlink(file) }
        var readOnly = Configuration()
        readOnly.readonly = true
        let epoch = LogEpoch.random()
        let head: Int64
        do {
            let source = try DatabaseQueue(path: copy, configuration: readOnly)
            let target = try DatabaseQueue(path: temp)
            try source.backup(to: target)
            try source.close()
            head = try target.write { db in
                guard try db.tableExists("changes"), try db.tableExists("meta") else {
                    throw StoreError("\(copy) is not an EdgeCache origin store")
                }
                let check = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                guard check == ["ok"] else { throw StoreError("\(copy) fails SQLite's integrity check: \(check.prefix(3))") }
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('log_epoch', ?)", arguments: [epoch.storedValue])
                return try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'changes'") ?? 0
            }
            try target.close()
        } catch {
            unlink(temp)
            throw error
        }
        let fd = open(temp, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        chmod(temp, 0o600)
        for stale in [path + "-wal", path + "-shm"] { unlink(stale) }
        guard rename(temp, path) == 0 else {
            throw StoreError("cannot rename \(temp) to \(path): \(String(cString: strerror(errno)))")
        }
        return (epoch, head)
    }
}
