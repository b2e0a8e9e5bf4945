import NIOSSL

/// Server and client TLS configurations for EdgeCache's mutual TLS, straight from files (tools
/// and benchmarks; a node goes through ``TLSMaterial``, which checks the files first).
public enum TLSSettings {
    /// A server configuration that requires a client certificate chaining to `caFile` only; with
    /// `optionalClientCertificate` a client may present none (it then needs a bearer token), but
    /// one it presents must still chain to `caFile`.
    public static func server(
        certFile: String, keyFile: String, caFile: String, minimumTLS13: Bool, optionalClientCertificate: Bool = false
    ) throws -> TLSConfiguration {
        try TLSMaterial.load(certFile: certFile, keyFile: keyFile, caFile: caFile)
            .serverConfiguration(minimumTLS13: minimumTLS13, optionalClientCertificate: optionalClientCertificate)
    }

    /// A client configuration presenting `certFile` and trusting `caFile` only.
    public static func client(certFile: String, keyFile: String, caFile: String) throws -> TLSConfiguration {
        try TLSMaterial.load(certFile: certFile, keyFile: keyFile, caFile: caFile).clientConfiguration()
    }
}
