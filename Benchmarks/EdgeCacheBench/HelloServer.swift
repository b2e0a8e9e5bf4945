import EdgeCacheHTTP
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging

/// `edgecache-bench hello --cert F --key F --ca F --body FILE [--port P]`: the floor of the
/// edge's HTTP stack. The same server stack as an edge's API listener (Hummingbird 2 over
/// SwiftNIO with NIOSSL, the same TLS settings and HTTP/1.1 configuration) answering every
/// request with one fixed FHIR resource from memory: no identity, policy, store, unsealing or
/// audit. tools/bench-reads drives it with the same wrk runs as the edge and nginx, so the
/// report can say how much of the edge's cost is the stack and how much is the edge's own work.
func runHello(_ arguments: [String]) async throws {
    func value(_ name: String) throws -> String {
        guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else {
            throw BenchError("hello: \(name) is required")
        }
        return arguments[index + 1]
    }
    let body = try Data(contentsOf: URL(fileURLWithPath: try value("--body")))
    let port = Int((try? value("--port")) ?? "0") ?? 0
    let tls = try TLSMaterial.load(certFile: try value("--cert"), keyFile: try value("--key"), caFile: try value("--ca"))
        .serverConfiguration(minimumTLS13: false, optionalClientCertificate: true)
    var logger = Logger(label: "hello")
    logger.logLevel = .warning
    let router = Router()
    let buffer = ByteBuffer(bytes: Array(body))
    router.get("/fhir/Observation/:id") { _, _ -> Response in
        Response(
            status: .ok,
            headers: [.contentType: "application/fhir+json", .eTag: "W/\"1\""],
            body: .init(byteBuffer: buffer))
    }
    let app = Application(
        router: router,
        server: try .tls(.http1(), tlsConfiguration: tls),
        configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil, reuseAddress: true),
        onServerRunning: { channel in
            FileHandle.standardOutput.write(Data("listening \(channel.localAddress?.port ?? 0)\n".utf8))
        },
        logger: logger)
    try await app.runService()
}
