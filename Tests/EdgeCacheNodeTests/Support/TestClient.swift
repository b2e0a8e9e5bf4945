import AsyncHTTPClient
import EdgeCacheHTTP
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An HTTPS client presenting one certificate of the test PKI.
final class TestClient: Sendable {
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first(name: name) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        /// The diagnostics of an OperationOutcome answer ("" otherwise).
        var diagnostics: String {
            ((json["issue"] as? [[String: Any]])?.first?["diagnostics"] as? String) ?? ""
        }
    }

    let http: HTTPClient

    init(pki: TestPKI, identity: String?, caFile: String? = nil, maxTLS12: Bool = false) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let identity {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.cert(identity)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.key(identity), format: .pem))
        }
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile ?? pki.ca))
        if maxTLS12 { tls.maximumTLSVersion = .tlsv12 }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(5), read: .seconds(20)))
        configuration.httpVersion = .http1Only
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await http.shutdown() }

    func send(
        _ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: String? = nil, bodyBytes: [UInt8]? = nil,
        timeout: TimeAmount = .seconds(20)
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let bytes = bodyBytes ?? body.map({ Array($0.utf8) }) {
            request.body = .bytes(ByteBuffer(bytes: bytes))
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
                request.headers.add(name: "Content-Type", value: "application/fhir+json")
            }
        }
        let response = try await http.execute(request, timeout: timeout)
        let collected = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(collected.readableBytesView))
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Reply { try await send(.GET, url, headers: headers) }
    func put(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> Reply {
        try await send(.PUT, url, headers: headers, body: body)
    }
    func post(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> Reply {
        try await send(.POST, url, headers: headers, body: body)
    }
    func delete(_ url: String, headers: [(String, String)] = []) async throws -> Reply { try await send(.DELETE, url, headers: headers) }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double, every interval: Double = 0.1, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if (try? await condition()) == true { return true }
        try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
    }
    return try await condition()
}
