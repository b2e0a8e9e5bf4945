import AsyncHTTPClient
import EdgeCacheHTTP
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The transport from an edge to its origin: HTTPS with the edge's client certificate.
///
/// One per process, shut down explicitly. The read timeout is an idle timeout (reset by every
/// chunk), kept above the heartbeat interval so a live stream never trips it while a hung
/// origin does.
///
/// Every new connection is checked against a ``PeerRequirement`` (for an edge: role `origin`)
/// right after its TLS handshake and before any request is written on it; on a certificate
/// that does not meet it, every request fails with ``PeerRefused`` before a byte of it is sent,
/// nothing the server sends is read, and the connection is closed (see ``PeerCheck``).
package final class OriginClient: Sendable {
    package struct Reply: Sendable {
        package var status: Int
        package var headers: HTTPHeaders
        package var body: [UInt8]
    }

    /// The origin could not be reached or did not answer in time.
    package struct Unreachable: Error, Sendable, CustomStringConvertible {
        package let reason: String
        package var description: String { "origin unreachable: \(reason)" }
    }

    /// The client new requests use; replaced by ``reload(tls:)``.
    private let current: Mutex<ClientGeneration>
    /// Replaced clients that still carry requests (an open change stream, say).
    private let retired = Mutex<[ClientGeneration]>([])
    /// The configuration of new clients (its TLS part replaced by a reload).
    private let currentConfiguration: Mutex<HTTPClient.Configuration>
    package let baseURL: String
    let requestTimeout: TimeAmount

    /// A client only (a benchmark, `edgecache status`): the certificate need not be usable by a
    /// server, so a client-only certificate (extended key usage clientAuth) is accepted here;
    /// a node's own client is built from the material it loaded for serving.
    /// - Parameter peer: what the server's certificate must name (``PeerRequirement/origin(_:)``
    ///   for an edge's origin).
    package convenience init(config: NodeConfig, peer: PeerRequirement, logger: Logger = Logger(label: "edgecache")) throws {
        let material = try config.loadTLSMaterial(use: .client)
        try self.init(config: config, material: material, peer: peer, logger: logger)
    }

    package init(config: NodeConfig, material: TLSMaterial, peer: PeerRequirement, logger: Logger = Logger(label: "edgecache")) throws {
        guard let url = config.originURL else { throw ConfigError(file: config.sourceFile, line: nil, "origin.url missing") }
        self.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.requestTimeout = .milliseconds(Int64(config.originRequestTimeoutMilliseconds))
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: Self.tls(material),
            timeout: .init(
                connect: .milliseconds(Int64(config.originConnectTimeoutMilliseconds)),
                read: .milliseconds(Int64(config.heartbeatTimeoutMilliseconds))))
        configuration.httpVersion = .http1Only
        let check = PeerCheck(requirement: peer, url: baseURL, logger: logger)
        configuration.http1_1ConnectionDebugInitializer = { channel in check.verify(channel) }
        configuration.http2ConnectionDebugInitializer = { channel in check.verify(channel) }
        self.currentConfiguration = Mutex(configuration)
        self.current = Mutex(ClientGeneration(HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)))
    }

    static func tls(_ material: TLSMaterial) -> TLSConfiguration {
        var tls = material.clientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        return tls
    }

    /// Presents `material` on every connection opened from now on. Requests in flight, and
    /// change streams already open, finish on the connections they have; the replaced client
    /// is shut down once the last of them ends.
    package func reload(tls material: TLSMaterial) {
        currentConfiguration.withLock { $0.tlsConfiguration = Self.tls(material) }
        replaceClient(ifCurrent: nil)
    }

    /// Makes a new client (from the current configuration) the one new requests use, if
    /// `expected` is still current (nil: in any case); the replaced one is retired and shut down
    /// when its last lease ends.
    private func replaceClient(ifCurrent expected: ClientGeneration?) {
        let next = ClientGeneration(HTTPClient(eventLoopGroupProvider: .singleton, configuration: currentConfiguration.withLock { $0 }))
        let replaced = current.withLock { current -> ClientGeneration? in
            if let expected, current !== expected { return nil }
            defer { current = next }
            return current
        }
        guard let replaced else {
            Task { try? await next.http.shutdown() }
            return
        }
        // A renewal racing ``shutdown()`` (a stream failing as the node stops): whichever of
        // the two looks second shuts the new client down, so none is left to its deinit.
        if isShutDown.withLock({ $0 }) { Task { try? await next.http.shutdown() } }
        retired.withLock { $0.append(replaced) }
        if replaced.retire() { Task { await self.close(replaced) } }
    }

    /// When the pool was last renewed after a failure (see ``renew(after:)``).
    private let lastRenewal = Mutex<ContinuousClock.Instant?>(nil)

    /// Swaps in a fresh client after a request on `generation` failed to reach the origin.
    ///
    /// AsyncHTTPClient's pool backs off between failed connection attempts, exponentially up to
    /// 60 s, and keeps that state until a connection succeeds: after an outage of a minute the
    /// first connection attempt could wait tens of seconds after the origin is back (the drills
    /// measured 6 to 20 s). The edge has its own backoff (stream cursor, replay probes), so the
    /// pool's is dropped: at most every 500 ms a failure starts a new pool. Requests still
    /// running on the old one finish there.
    private func renew(after generation: ClientGeneration) {
        let now = ContinuousClock.now
        let due = lastRenewal.withLock { last -> Bool in
            if let last, now - last < .milliseconds(500) { return false }
            last = now
            return true
        }
        if due { replaceClient(ifCurrent: generation) }
    }

    /// Whether `error` means the request did not get through to the origin (no connection,
    /// a connection that broke, a timeout), as opposed to an answer the caller refused.
    static func isTransportFailure(_ error: any Error) -> Bool {
        error is HTTPClientError || error is NIOConnectionError || error is ChannelError || error is IOError
            || error is Unreachable || error is NIOSSLError
    }

    private func close(_ generation: ClientGeneration) async {
        try? await generation.http.shutdown()
        retired.withLock { $0.removeAll { $0 === generation } }
    }

    /// Set by ``shutdown()``; see ``replaceClient(ifCurrent:)``.
    private let isShutDown = Mutex(false)

    package func shutdown() async {
        isShutDown.withLock { $0 = true }
        let all = retired.withLock { $0 } + [current.withLock { $0 }]
        for generation in all { try? await generation.http.shutdown() }
        retired.withLock { $0.removeAll() }
    }

    /// Runs `body` with the current client, which stays open until `body` returns; a transport
    /// failure renews the pool for the next request.
    private func withClient<T>(_ body: (HTTPClient) async throws -> T) async throws -> T {
        let generation = current.withLock { $0.lease() }
        defer { if generation.release() { Task { await self.close(generation) } } }
        do {
            return try await body(generation.http)
        } catch {
            if Self.isTransportFailure(error), !Task.isCancelled { renew(after: generation) }
            throw error
        }
    }

    /// A GET of `path` (see ``send(method:path:headers:body:maxBytes:contentType:)``).
    package func get(_ path: String) async throws(Unreachable) -> Reply {
        try await send(method: .GET, path: path)
    }

    /// Sends a request and collects a bounded reply within the request timeout.
    package func send(
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
            let timeout = requestTimeout
            return try await withClient { http in
                let deadline = NIODeadline.now() + timeout
                let response = try await http.execute(request, deadline: deadline)
                let bytes = try await withDeadline(deadline) { try await response.body.collect(upTo: maxBytes) }
                return Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
            }
        } catch {
            throw Unreachable(reason: String(describing: error).prefix(200).description)
        }
    }

    /// Opens a long-lived streaming GET and hands the response to `body`, which reads it; the
    /// client (and its certificate) stays in use until `body` returns.
    package func withStream<T>(path: String, _ body: (HTTPClientResponse) async throws -> T) async throws -> T {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        let timeout = requestTimeout
        return try await withClient { http in
            try await body(try await http.execute(request, timeout: timeout))
        }
    }
}

/// One `HTTPClient` and the requests that use it.
final class ClientGeneration: Sendable {
    let http: HTTPClient
    private let state = Mutex<(leases: Int, retired: Bool)>((0, false))

    init(_ http: HTTPClient) { self.http = http }

    func lease() -> ClientGeneration {
        state.withLock { $0.leases += 1 }
        return self
    }

    /// Ends a lease; true if the client is retired and now unused (the caller shuts it down).
    func release() -> Bool {
        state.withLock {
            $0.leases -= 1
            return $0.retired && $0.leases == 0
        }
    }

    /// Marks the client replaced; true if nothing uses it (the caller shuts it down).
    func retire() -> Bool {
        state.withLock {
            $0.retired = true
            return $0.leases == 0
        }
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
