import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One TLS connection opened and kept by hand (no pool): HTTP/1.1 requests are written on it
/// one after another, so a test knows they all travel on the same connection, and it can see
/// the certificate the server presented when the connection was made.
final class RawTLSConnection: Sendable {
    let channel: any Channel
    private let received: Received

    static func open(port: Int, pki: TestPKI, identity: String) async throws -> RawTLSConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.cert(identity)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.key(identity), format: .pem))
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.ca))
        let context = try NIOSSLContext(configuration: tls)
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(Collector(received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawTLSConnection(channel: channel, received: received)
    }

    private init(channel: any Channel, received: Received) {
        self.channel = channel
        self.received = received
    }

    var isOpen: Bool { channel.isActive }

    /// The serial number (hex) of the certificate the server presented on this connection.
    func serverCertificateSerial() async throws -> String? {
        try await channel.nioSSL_peerCertificate().get().map { $0.serialNumber.map { String(format: "%02x", $0) }.joined() }
    }

    /// Sends `GET path` on this connection and waits for the whole answer (Content-Length).
    func get(_ path: String, timeout: Double = 10) async throws -> (status: Int, body: String) {
        received.reset()
        try await channel.writeAndFlush(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")).get()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let answer = received.completeResponse() { return answer }
            guard channel.isActive else { throw TestFailure("the connection was closed by the server") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("no complete answer to GET \(path) within \(timeout) s")
    }

    func close() async { try? await channel.close() }

    private final class Received: Sendable {
        private let bytes = NIOLockedValueBox<[UInt8]>([])

        func append(_ more: [UInt8]) { bytes.withLockedValue { $0 += more } }
        func reset() { bytes.withLockedValue { $0 = [] } }

        /// Status and body once the head and `Content-Length` bytes of body have arrived.
        func completeResponse() -> (status: Int, body: String)? {
            let data = bytes.withLockedValue { $0 }
            let separator: [UInt8] = [13, 10, 13, 10]
            guard let end = (0..<max(0, data.count - 3)).first(where: { Array(data[$0..<$0 + 4]) == separator }) else { return nil }
            let head = String(decoding: data[..<end], as: UTF8.self).split(separator: "\r\n")
            guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
                return nil
            }
            let length =
                head.dropFirst().compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
            let body = data[(end + 4)...]
            guard body.count >= length else { return nil }
            return (status, String(decoding: body.prefix(length), as: UTF8.self))
        }
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: Received

        init(_ received: Received) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            received.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        }
    }
}
