import NIOSSL

/// Server and client TLS configurations for EdgeCache's mutual TLS.
public enum TLSSettings {
    /// A server configuration that requires a client certificate chaining to `caFile` only; with
    /// `optionalClientCertificate` a client may present none (it then needs a bearer token), but
    /// one it presents must still chain to `caFile`.
    public static func server(
        certFile: String, keyFile: String, caFile: String, minimumTLS13: Bool, optionalClientCertificate: Bool = false
    ) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certFile).map { NIOSSLCertificateSource.certificate($0) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)))
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        configuration.certificateVerification = optionalClientCertificate ? .optionalVerification : .noHostnameVerification
        configuration.minimumTLSVersion = minimumTLS13 ? .tlsv13 : .tlsv12
        return configuration
    }

    /// A client configuration presenting `certFile` and trusting `caFile` only.
    public static func client(certFile: String, keyFile: String, caFile: String) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }
}
