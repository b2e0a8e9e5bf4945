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

extension TestPKI {
    /// Issues `name.crt|.key` from this PKI's CA with the given subject alternative names (as
    /// openssl writes them, e.g. `URI:urn:edgecache:tenant:,URI:urn:edgecache:role:client`).
    func issue(_ name: String, subjectAltName: String, clientOnly: Bool = true) throws {
        let script = """
            set -e
            cd "$1"
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2.key" 2>/dev/null
            openssl req -new -key "$2.key" -subj "/O=EdgeCache Test/CN=$2" -out "$2.csr" 2>/dev/null
            printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature,keyEncipherment\\nextendedKeyUsage=%s\\nsubjectAltName=%s\\n' "$3" "$4" > "$2.ext"
            openssl x509 -req -in "$2.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -CAserial "$2.srl" -days 30 -sha256 -extfile "$2.ext" -out "$2.crt" 2>/dev/null
            rm -f "$2.csr" "$2.ext" "$2.srl"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script, "issue", dir, name, clientOnly ? "clientAuth" : "serverAuth,clientAuth", subjectAltName]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("issuing \(name) failed") }
    }
}
