import EdgeCacheCrypto
import EdgeCacheNode
import Foundation

/// The development PKI and the node configs every bench part starts from: one place for the
/// YAML the parts used to write each for themselves.
enum BenchNodes {
    /// Writes a development PKI for tenant `bench` into `dir/pki` (tools/gen-certs.sh).
    static func makePKI(in dir: String, repositoryRoot: String) throws {
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: "/bin/bash")
        gen.arguments = [repositoryRoot + "/tools/gen-certs.sh", dir + "/pki", "bench"]
        gen.standardError = FileHandle.nullDevice
        try gen.run()
        gen.waitUntilExit()
        guard gen.terminationStatus == 0 else { throw BenchError("tools/gen-certs.sh failed in \(dir)") }
    }

    /// An origin with its peer listener on `peerPort` (`dir/origin.yaml`, KEK `dir/origin.kek`).
    static func origin(in dir: String, peerPort: Int) throws -> NodeConfig {
        try NodeConfig.parse(
            """
            role: origin
            node_id: bench-origin
            listen: { api: "127.0.0.1:0", peer: "127.0.0.1:\(peerPort)" }
            tls: { cert: pki/origin.crt, key: pki/origin.key, ca: pki/ca.crt }
            data_dir: origin-data
            keys: { kek_file: origin.kek }
            """, file: dir + "/origin.yaml")
    }

    /// An edge of tenant `bench` (`dir/edge.yaml`, KEK `dir/edge.kek`): its API on `api`, its
    /// origin at `originURL` with `originKeys` added to the `origin` map.
    static func edge(
        in dir: String, api: String = "127.0.0.1:0", originURL: String, originKeys: String = "request_timeout_ms: 30000"
    )
        throws -> NodeConfig
    {
        try NodeConfig.parse(
            """
            role: edge
            node_id: bench-edge
            tenant: bench
            listen: { api: "\(api)" }
            origin: { url: "\(originURL)", \(originKeys) }
            tls: { cert: pki/edge-bench.crt, key: pki/edge-bench.key, ca: pki/ca.crt }
            data_dir: edge-data
            keys: { kek_file: edge.kek }
            """, file: dir + "/edge.yaml")
    }

    /// A client of tenant `bench` (its client-only certificate) pointed at `url`, for
    /// ``OriginClient`` (`dir/client.yaml`).
    static func client(in dir: String, url: String) throws -> NodeConfig {
        try NodeConfig.parse(
            """
            role: edge
            node_id: bench-client
            tenant: bench
            listen: { api: "127.0.0.1:0" }
            origin: { url: "\(url)", request_timeout_ms: 5000 }
            tls: { cert: pki/client-bench.crt, key: pki/client-bench.key, ca: pki/ca.crt }
            data_dir: client-data
            keys: { kek_file: edge.kek }
            """, file: dir + "/client.yaml")
    }
}
