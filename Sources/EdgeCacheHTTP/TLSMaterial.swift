import Foundation
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS

/// A node's certificate chain, private key and trusted CA, read from their files and checked
/// before any listener or client uses them: at start, and again on every reload.
package struct TLSMaterial: Sendable {
    package let chain: [NIOSSLCertificate]
    package let key: NIOSSLPrivateKey
    package let trusted: [NIOSSLCertificate]
    /// The files they came from (for messages).
    package let certFile: String, keyFile: String, caFile: String

    /// Why material was refused; the message names the file and says what to fix.
    package struct Invalid: Error, Sendable, CustomStringConvertible {
        package let description: String
        /// The setting whose file is at fault: `tls.cert`, `tls.key` or `tls.ca`.
        package let setting: String
        init(_ description: String) {
            self.description = description
            self.setting = String(description.prefix { $0 != " " && $0 != ":" })
        }
    }

    /// The node's own certificate (the first of its chain).
    package var leaf: NIOSSLCertificate { chain[0] }

    /// What the material will be used for, which decides what ``load(certFile:keyFile:caFile:use:now:)`` checks.
    package enum Use: Sendable {
        /// A node: it serves TLS on its listeners and connects to peers, so the certificate must
        /// be accepted by a TLS client (server use) and by a TLS server (client use). `serve`,
        /// `config check` and every reload check this.
        case node
        /// A program that only ever connects as a client (a benchmark's load generator, a
        /// library user's ``OriginClient(config:peer:logger:)``): the certificate must be accepted by a TLS
        /// server; a client-only certificate (extended key usage clientAuth) is fine.
        case client
    }

    /// Reads and checks the three files: each parses, the leaf certificate is within its
    /// validity period at `now` (epoch seconds), it chains to the CA file's certificates, and the
    /// private key belongs to it. For ``Use/node`` the certificate must also be usable by a TLS
    /// server; a client-only certificate is refused with a message that says what to use.
    package static func load(
        certFile: String, keyFile: String, caFile: String, use: Use = .node, now: Int64 = Int64(Date().timeIntervalSince1970)
    ) throws(Invalid) -> TLSMaterial {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certFile)
        } catch {
            throw Invalid("tls.cert \(certFile): cannot be read as PEM certificates (\(error))")
        }
        guard let leaf = chain.first else { throw Invalid("tls.cert \(certFile): holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw Invalid("tls.key \(keyFile): cannot be read as a PEM private key (\(error))")
        }
        let trusted: [NIOSSLCertificate]
        do {
            trusted = try NIOSSLCertificate.fromPEMFile(caFile)
        } catch {
            throw Invalid("tls.ca \(caFile): cannot be read as PEM certificates (\(error))")
        }
        guard !trusted.isEmpty else { throw Invalid("tls.ca \(caFile): holds no certificate") }
        if Int64(leaf.notValidAfter) <= now {
            throw Invalid("tls.cert \(certFile): expired at \(Self.date(leaf.notValidAfter)); issue a new certificate")
        }
        if Int64(leaf.notValidBefore) > now + 300 {
            throw Invalid("tls.cert \(certFile): not valid before \(Self.date(leaf.notValidBefore)); check the clock or the certificate")
        }
        let material = TLSMaterial(chain: chain, key: key, trusted: trusted, certFile: certFile, keyFile: keyFile, caFile: caFile)
        let server: NIOSSLContext
        do {
            server = try NIOSSLContext(configuration: material.serverConfiguration(minimumTLS13: false))
        } catch {
            throw Invalid(
                "tls.key \(keyFile): does not belong to the certificate in \(certFile) (\(error)); use the key the certificate was issued for"
            )
        }
        do {
            try material.selfHandshake(server: server, verifyServer: use == .node)
        } catch {
            if use == .node, (try? material.selfHandshake(server: server, verifyServer: false)) != nil {
                // The CA issued it and the key fits, but a TLS client refuses it as a server: a
                // client-only certificate (extended key usage clientAuth) in a node's config.
                throw Invalid(
                    "tls.cert \(certFile): is a client-only certificate (a TLS client refuses it as a server: no serverAuth use); "
                        + "a node serves TLS on its listeners and needs a node certificate: tools/gen-certs.sh writes origin.crt "
                        + "for the origin and edge-TENANT.crt for an edge (client-TENANT.crt is for applications and load generators)")
            }
            throw Invalid(
                "tls.cert \(certFile): a mutual-TLS handshake with it, its key and tls.ca \(caFile) fails (\(String(describing: error).prefix(200))); "
                    + "check that \(caFile) holds the CA that issued it")
        }
        return material
    }

    /// Runs a mutual-TLS handshake in memory between a client and a server that both hold this
    /// material: it completes only if the key belongs to the certificate and the certificate
    /// chains to the CA file, which is what every peer of this node will check. With
    /// `verifyServer` false only the server checks (the certificate as a client's).
    func selfHandshake(server serverContext: NIOSSLContext, verifyServer: Bool = true) throws {
        let server = EmbeddedChannel()
        let client = EmbeddedChannel()
        func pump() throws -> Bool {
            var moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                moved = true
                try server.writeInbound(bytes)
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved = true
                try client.writeInbound(bytes)
            }
            return moved
        }
        defer {
            // Close both ends by exchanging close_notify (never wait: the channels are in memory).
            client.close(promise: nil)
            for _ in 0..<4 where (try? pump()) == true {}
            server.close(promise: nil)
            for _ in 0..<4 where (try? pump()) == true {}
        }
        var clientConfiguration = clientConfiguration()
        clientConfiguration.certificateVerification = verifyServer ? .noHostnameVerification : .none
        // Both ends must finish: in TLS 1.3 the client is done before the server has checked
        // the client's certificate.
        let done = HandshakeWatcher()
        let serverDone = HandshakeWatcher()
        try server.pipeline.syncOperations.addHandler(
            NIOSSLServerHandler(context: serverContext))
        try server.pipeline.syncOperations.addHandler(serverDone)
        try client.pipeline.syncOperations.addHandler(
            try NIOSSLClientHandler(context: try NIOSSLContext(configuration: clientConfiguration), serverHostname: nil))
        try client.pipeline.syncOperations.addHandler(done)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        _ = server.connect(to: address)
        _ = client.connect(to: address)
        for _ in 0..<50 where !(done.completed && serverDone.completed) {
            let moved = try pump()
            try client.throwIfErrorCaught()
            try server.throwIfErrorCaught()
            if !moved { break }
        }
        guard done.completed, serverDone.completed else { throw Invalid("the handshake did not complete") }
    }

    static func date(_ time: time_t) -> String {
        Date(timeIntervalSince1970: TimeInterval(time)).formatted(.iso8601)
    }

    /// A server configuration: this material, client certificates chaining to the CA only;
    /// with `optionalClientCertificate` a client may present none (it then needs a bearer token).
    package func serverConfiguration(minimumTLS13: Bool, optionalClientCertificate: Bool = false) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.trustRoots = .certificates(trusted)
        configuration.certificateVerification = optionalClientCertificate ? .optionalVerification : .noHostnameVerification
        configuration.minimumTLSVersion = minimumTLS13 ? .tlsv13 : .tlsv12
        configuration.cipherSuiteValues = Self.tls12CipherSuites
        return configuration
    }

    /// The TLS 1.2 cipher suites a listener offers: Mozilla's "intermediate" set (ECDHE with
    /// AES-GCM or ChaCha20-Poly1305; BoringSSL has no DHE), so no CBC or SHA-1 suite. TLS 1.3
    /// suites are all AEAD and not configurable.
    package static let tls12CipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// A client configuration presenting this material and trusting the CA only.
    package func clientConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(key)
        configuration.trustRoots = .certificates(trusted)
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}

/// Notes when the TLS handshake of the channel it sits on completes.
private final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private(set) var completed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { completed = true }
        context.fireUserInboundEventTriggered(event)
    }
}
