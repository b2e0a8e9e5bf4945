import EdgeCacheCore
import EdgeCacheCrypto
import Foundation

/// Keys made by the `openssl` CLI and JWTs signed with them (real signatures, no mocks).
/// Shared by every test target that needs bearer tokens.
package struct TokenKeys: Sendable {
    package let dir: String

    package init() throws {
        dir = NSTemporaryDirectory() + "edgecache-jws-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "\(dir)/rsa.key"])
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "\(dir)/p256.key"])
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "\(dir)/p384.key"])
        for name in ["rsa", "p256", "p384"] {
            try openssl(["pkey", "-in", "\(dir)/\(name).key", "-pubout", "-out", "\(dir)/\(name).pub.pem"])
        }
    }

    package func publicKey(_ name: String, kid: String? = nil) throws -> JWSPublicKey {
        try JWSPublicKey(pem: Array(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).pub.pem"))), kid: kid)
    }

    /// A compact JWS of `claims` (JSON text) signed with key `name` under `alg`.
    package func token(_ claims: String, alg: String, key name: String, header extra: String = "") throws -> String {
        let header = #"{"alg":"\#(alg)","typ":"JWT"\#(extra)}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        let inputFile = "\(dir)/input-\(UUID().uuidString)"
        try Data(input.utf8).write(to: URL(fileURLWithPath: inputFile))
        defer { try? FileManager.default.removeItem(atPath: inputFile) }
        let digest = alg == "ES384" ? "-sha384" : "-sha256"
        try openssl(["dgst", digest, "-sign", "\(dir)/\(name).key", "-out", inputFile + ".sig", inputFile])
        defer { try? FileManager.default.removeItem(atPath: inputFile + ".sig") }
        var signature = Array(try Data(contentsOf: URL(fileURLWithPath: inputFile + ".sig")))
        if alg.hasPrefix("ES") {
            signature = JWSSignature.raw(fromDER: signature, coordinateSize: name == "p384" ? 48 : 32)!
        }
        return input + "." + Base64URL.encode(signature)
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CryptoError("openssl \(arguments.first ?? "") failed") }
    }
}
