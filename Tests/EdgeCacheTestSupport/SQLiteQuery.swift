import EdgeCacheTestSupport
import Foundation

/// Runs a SQL query on a SQLite file with the system's python3 (a second, independent reader of
/// EdgeCache's files): one line per row, columns joined by `|`; blobs as hex, or with
/// `blobsAsHex` false as Python prints them.
package func sqliteQuery(_ path: String, _ sql: String, blobsAsHex: Bool = true) throws -> String {
    let column = blobsAsHex ? "x.hex() if isinstance(x, bytes) else str(x)" : "str(x)"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "python3", "-c",
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join('|'.join(\(column) for x in r) for r in c.execute(sys.argv[2])))",
        path, sql,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
