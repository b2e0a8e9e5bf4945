import EdgeCacheCrypto
import Foundation

/// Repository root, from this file's location.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.path
}()

/// A temporary folder removed when released.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "edgecache-it-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A development PKI made by the real `tools/gen-certs.sh`.
struct TestPKI: Sendable {
    let dir: String

    init(dir: String, tenants: [String]) throws {
        self.dir = dir
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [repositoryRoot + "/tools/gen-certs.sh", dir] + tenants
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("gen-certs.sh failed") }
    }

    func cert(_ name: String) -> String { "\(dir)/\(name).crt" }
    func key(_ name: String) -> String { "\(dir)/\(name).key" }
    var ca: String { "\(dir)/ca.crt" }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes a KEK file with the real key tooling.
func makeKEK(_ path: String) throws {
    try KeyEncryptionKey.generate().write(toNewFile: path)
}
