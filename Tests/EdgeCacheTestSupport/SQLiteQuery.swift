import Foundation

/// Runs a python3 script (`python3 -c script args…`) to completion: its standard output and exit
/// status. The tests use the system's python3 and its sqlite3 module as a second, independent
/// reader and writer of EdgeCache's SQLite files (to inspect, corrupt or back them up).
package func runPython(_ script: String, _ arguments: String...) throws -> (output: Data, status: Int32) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (data, process.terminationStatus)
}

/// Runs `script` on a SQLite file (`executescript`, then commit); false if python3 failed.
@discardableResult
package func sqliteExecute(_ path: String, _ script: String) throws -> Bool {
    try runPython("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", path, script)
        .status == 0
}

/// Runs a SQL query on a SQLite file: one line per row, columns joined by `|`; blobs as hex,
/// or with `blobsAsHex` false as Python prints them.
package func sqliteQuery(_ path: String, _ sql: String, blobsAsHex: Bool = true) throws -> String {
    let column = blobsAsHex ? "x.hex() if isinstance(x, bytes) else str(x)" : "str(x)"
    let result = try runPython(
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join('|'.join(\(column) for x in r) for r in c.execute(sys.argv[2])))",
        path, sql)
    return String(decoding: result.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
