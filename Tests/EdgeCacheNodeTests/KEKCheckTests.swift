import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Testing

/// `config check` refuses every KEK file that `serve` refuses, and names the config line of
/// `keys.kek_file` (issue 13 item 8: it used to exit 0 and leave systemd to find out).
@Suite struct KEKCheckTests {
    let pki = SharedPKI.main

    /// An origin config whose store exists (its audit store holds a data key wrapped by the KEK).
    func origin(in dir: TempDir) throws -> (config: String, kek: String) {
        let config = try PairConfig(dir: dir.path, pki: pki).writeOrigin()
        let kek = dir.path + "/origin.kek"
        try FileManager.default.createDirectory(atPath: dir.path + "/origin-data", withIntermediateDirectories: true)
        _ = try AuditStore(
            path: dir.path + "/origin-data/audit.sqlite", kek: try KeyEncryptionKey.load(path: kek), clock: SystemWallClock())
        return (config, kek)
    }

    func replace(_ kek: String, with text: String, mode: mode_t = 0o600) throws {
        try FileManager.default.removeItem(atPath: kek)
        try text.write(toFile: kek, atomically: true, encoding: .utf8)
        chmod(kek, mode)
    }

    @Test(arguments: ["mode 0644", "16 bytes", "not base64", "another node's KEK", "missing"])
    func configCheckRefusesWhatServeRefuses(_ fault: String) throws {
        let dir = TempDir()
        let (config, kek) = try origin(in: dir)
        let good = try runCLI(["config", "check", "--config", config])
        #expect(good.status == 0, "\(good.output)")
        switch fault {
        case "mode 0644": chmod(kek, 0o644)
        case "16 bytes": try replace(kek, with: Data(repeating: 7, count: 16).base64EncodedString() + "\n")
        case "not base64": try replace(kek, with: "this is not a key\n")
        case "another node's KEK":
            try FileManager.default.removeItem(atPath: kek)
            try KeyEncryptionKey.generate().write(toNewFile: kek)
        default: try FileManager.default.removeItem(atPath: kek)
        }
        let check = try runCLI(["config", "check", "--config", config])
        // keys: is line 6 of the origin config.
        #expect(check.status == 2 && check.output.hasPrefix("\(config):6: "), "\(fault): \(check.output)")
        #expect(check.output.contains(kek), "\(fault): \(check.output)")
        let serve = try runCLI(["serve", "--config", config])
        #expect(serve.status == 1 && serve.output.contains("\(config):6: "), "\(fault): serve: \(serve.output)")
    }
}
