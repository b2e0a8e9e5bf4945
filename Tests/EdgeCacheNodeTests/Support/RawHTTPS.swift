import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One HTTP/1.1 request written byte for byte over a fresh mutual-TLS connection, so a test
/// controls what no HTTP client lets it: the request target (`//fhir/…`, `%2F`), the `Host`
/// header, `Transfer-Encoding`. The request is sent with `Connection: close` and the answer
/// read until the server closes the connection.
struct RawHTTPS {
    struct Reply: CustomStringConvertible {
        var status: Int
        /// Header lines as sent, names lowercased.
        var headers: [(String, String)]
        /// The body, de-chunked when the answer was chunked.
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var description: String { "\(status) \(text.prefix(300))" }
    }

    let port: Int
    let pki: TestPKI
    let identity: String
    /// Cipher suites the client offers (nil: NIOSSL's default list).
    var cipherSuites: String? = nil
    var maxTLS12 = false

    /// Sends `method target` with `headers` (plus `Host: localhost` unless given) and `body`.
    /// With `rawBody` the body bytes are sent as they are (no Content-Length added).
    func send(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: String? = nil, rawBody: String? = nil,
        timeout: Double = 10
    ) async throws -> Reply {
        var head = "\(method) \(target) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: localhost\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Type: application/fhir+json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        head += "Connection: close\r\n\r\n" + (body ?? rawBody ?? "")
        let bytes = try await exchange(Array(head.utf8), timeout: timeout)
        return try Self.parse(bytes, head: method == "HEAD")
    }

    /// Opens the connection, writes `request`, returns everything read until the server closes.
    func exchange(_ request: [UInt8], timeout: Double) async throws -> [UInt8] {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.cert(identity)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.key(identity), format: .pem))
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.ca))
        if let cipherSuites { tls.cipherSuites = cipherSuites }
        if maxTLS12 { tls.maximumTLSVersion = .tlsv12 }
        let context = try NIOSSLContext(configuration: tls)
        let received = NIOLockedValueBox<[UInt8]>([])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(Collector(received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: request)).get()
        let deadline = Date().addingTimeInterval(timeout)
        while channel.isActive, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        if channel.isActive {
            try? await channel.close()
            throw TestFailure("the server did not close the connection within \(timeout) s")
        }
        return received.withLockedValue { $0 }
    }

    static func parse(_ data: [UInt8], head isHead: Bool) throws -> Reply {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, data.count - 3)).first(where: { Array(data[$0..<$0 + 4]) == separator }) else {
            throw TestFailure("no complete answer head in \(data.count) bytes")
        }
        let lines = String(decoding: data[..<end], as: UTF8.self).split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            throw TestFailure("no status line")
        }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (parts[0].lowercased(), parts[1].trimmingCharacters(in: .whitespaces))
        }
        var body = Array(data[(end + 4)...])
        if isHead { body = [] }
        if headers.contains(where: { $0.0 == "transfer-encoding" && $0.1.lowercased().contains("chunked") }) {
            var out: [UInt8] = []
            var rest = body[...]
            while let crlf = (rest.startIndex..<max(rest.startIndex, rest.endIndex - 1)).first(where: {
                rest[$0] == 13 && rest[$0 + 1] == 10
            }) {
                let size = Int(String(decoding: rest[rest.startIndex..<crlf], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                if size == 0 { break }
                let start = crlf + 2
                out += rest[start..<min(rest.endIndex, start + size)]
                rest = rest[min(rest.endIndex, start + size + 2)...]
            }
            body = out
        } else if let length = headers.first(where: { $0.0 == "content-length" }).flatMap({ Int($0.1) }) {
            body = Array(body.prefix(length))
        }
        return Reply(status: status, headers: headers, body: body)
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<[UInt8]>

        init(_ received: NIOLockedValueBox<[UInt8]>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            received.withLockedValue { $0 += bytes }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
