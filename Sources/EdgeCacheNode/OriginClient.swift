import AsyncHTTPClient
import EdgeCacheHTTP
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// The transport from an edge to its origin: HTTPS with the edge's client certificate.
///
/// One per process, shut down explicitly. The read timeout is an idle timeout (reset by every
/// chunk), kept above the heartbeat interval so a live stream never trips it while a hung
/// origin does.
public final class OriginClient: Sendable {
    public struct Reply: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    /// The origin could not be reached or did not answer in time.
    public struct Unreachable: Error, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { "origin unreachable: \(reason)" }
    }

    let http: HTTPClient
    public let baseURL: String
    let requestTimeout: TimeAmount

    public init(config: NodeConfig) throws {
        guard let url = config.originURL else { throw ConfigError(file: config.sourceFile, line: nil, "origin.url missing") }
        self.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.requestTimeout = .milliseconds(Int64(config.originRequestTimeoutMilliseconds))
        var tls = try TLSSettings.client(certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile)
        tls.minimumTLSVersion = .tlsv13
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            timeout: .init(
                connect: .milliseconds(Int64(config.originConnectTimeoutMilliseconds)),
                read: .milliseconds(Int64(config.heartbeatTimeoutMilliseconds))))
        configuration.httpVersion = .http1Only
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// A GET of `path` (see ``send(method:path:headers:body:maxBytes:contentType:)``).
    public func get(_ path: String) async throws(Unreachable) -> Reply {
        try await send(method: .GET, path: path)
    }

    /// Sends a request and collects a bounded reply within the request timeout.
    public func send(
        method: HTTPMethod, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil, maxBytes: Int = 64 << 20,
        contentType: String = "application/fhir+json"
    ) async throws(Unreachable) -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.replaceOrAdd(name: "Content-Type", value: contentType)
        }
        do {
            let deadline = NIODeadline.now() + requestTimeout
            let response = try await http.execute(request, deadline: deadline)
            let bytes = try await withDeadline(deadline) { try await response.body.collect(upTo: maxBytes) }
            return Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
        } catch {
            throw Unreachable(reason: String(describing: error).prefix(200).description)
        }
    }

    /// Opens a long-lived streaming GET; the caller iterates the body.
    public func openStream(path: String) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        return try await http.execute(request, timeout: requestTimeout)
    }
}

/// Runs `operation`, failing with a timeout error at `deadline`.
func withDeadline<T: Sendable>(_ deadline: NIODeadline, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            let remaining = deadline - .now()
            if remaining > .zero { try await Task.sleep(nanoseconds: UInt64(remaining.nanoseconds)) }
            return nil
        }
        defer { group.cancelAll() }
        guard let value = try await group.next() ?? nil else { throw OriginClient.Unreachable(reason: "timed out") }
        return value
    }
}
