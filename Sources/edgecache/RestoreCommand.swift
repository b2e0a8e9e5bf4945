import ArgumentParser
import EdgeCacheCore
import EdgeCacheNode
import EdgeCacheStore
import Foundation

/// `edgecache restore`: puts a copy of the origin's store back, with a new log epoch.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a stopped origin's store from a copy, with a new log epoch (edges then bootstrap again).",
        discussion: """
            Stop the origin first. The copy must be a consistent one (sqlite3 .backup, VACUUM INTO, or a \
            filesystem snapshot of origin.sqlite with its -wal). Its data keys must open with the KEK of the \
            config. Writes the origin acknowledged after the copy was made are gone from the origin; edges \
            replay the ones they still hold in their outbox (see docs/OPERATIONS.md, "Restoring the origin").
            """)

    @Option(name: .long, help: "The origin's config file.") var config: String
    @Option(name: .long, help: "The copy of origin.sqlite to restore.") var from: String

    func run() async throws {
        umask(0o077)
        let nodeConfig = try loadConfigOrExit(config)
        guard nodeConfig.role == .origin else {
            FileHandle.standardError.write(Data("edgecache restore: \(config) is not an origin's config\n".utf8))
            throw ExitCode(2)
        }
        let target = nodeConfig.dataDir + "/origin.sqlite"
        do {
            let kek = try nodeConfig.loadKEK()
            try KEKCheck.verify(storeFile: from, kek: kek)
            try FileManager.default.createDirectory(
                atPath: nodeConfig.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let (epoch, head) = try SQLiteOriginStore.restore(from: from, to: target)
            print("restored \(target) from \(from): head LSN \(head), new log epoch \(epoch.hex); start the origin (edges bootstrap again)")
        } catch {
            FileHandle.standardError.write(Data("edgecache restore: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
