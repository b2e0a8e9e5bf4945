import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import Yams

/// The `auth` section: who may call the API listener besides certificate holders.
///
/// ```yaml
/// auth:
///   issuers:
///     - issuer: https://idp.st-mary.example        # the tokens' exact `iss`
///       tenant: st-mary                            # the tenant its users act for (an edge: its own tenant)
///       audience: https://edge.st-mary.example/fhir # required in the tokens' `aud`
///       keys: [certs/idp-st-mary.pub.pem]          # PEM public keys: RSA, EC P-256 or P-384; or { file, kid }
///   client_certificates: true                      # certificates also identify callers (default true)
///   leeway_s: 60                                   # clock skew allowed on exp and nbf (0 .. 600)
/// ```
package struct AuthConfig: Sendable, Equatable {
    /// One trusted identity provider.
    package struct Issuer: Sendable, Equatable {
        package var issuer: String
        package var tenant: String
        package var audience: String
        /// PEM public key files (absolute) with optional key ids.
        package var keys: [(file: String, kid: String?)]
        /// The line of its entry, for errors found later (unreadable keys).
        package var line: Int?

        package static func == (lhs: Issuer, rhs: Issuer) -> Bool {
            lhs.issuer == rhs.issuer && lhs.tenant == rhs.tenant && lhs.audience == rhs.audience
                && lhs.keys.map(\.file) == rhs.keys.map(\.file) && lhs.keys.map(\.kid) == rhs.keys.map(\.kid)
        }
    }

    package var issuers: [Issuer] = []
    package var clientCertificates = true
    package var leewaySeconds = 60

    package init() {}
}

extension NodeConfig {
    static func parseAuth(_ auth: inout YAMLMap, file: String, resolve: (String) -> String) throws(ConfigError) -> AuthConfig {
        var config = AuthConfig()
        config.clientCertificates = try auth.bool("client_certificates") ?? true
        config.leewaySeconds = try auth.int("leeway_s", range: 0...600) ?? config.leewaySeconds
        if let listed = try auth.list("issuers") {
            let path = listed.path
            for (index, item) in listed.items.enumerated() {
                var entry = try YAMLMap(file: file, node: item, path: "\(path)[\(index)]")
                let issuer = try entry.requiredString("issuer", hint: "the exact 'iss' of the identity provider's tokens")
                let tenant = try entry.requiredString("tenant", hint: "the tenant this issuer's users act for")
                let audience = try entry.requiredString("audience", hint: "the 'aud' its tokens carry for this server")
                guard let keyList = try entry.list("keys"), !keyList.items.isEmpty else {
                    throw ConfigError(file: file, line: entry.line, "'\(path)[\(index)].keys' is required: a list of PEM public key files")
                }
                let (keysPath, keyNodes) = (keyList.path, keyList.items)
                var keys: [(file: String, kid: String?)] = []
                for (k, keyNode) in keyNodes.enumerated() {
                    if case .scalar(let scalar) = keyNode, !scalar.string.isEmpty {
                        keys.append((resolve(scalar.string), nil))
                        continue
                    }
                    var keyMap = try YAMLMap(file: file, node: keyNode, path: "\(keysPath)[\(k)]")
                    let keyFile = try keyMap.requiredString("file", hint: "a PEM public key file")
                    keys.append((resolve(keyFile), try keyMap.string("kid")))
                    try keyMap.rejectUnknownKeys()
                }
                try entry.rejectUnknownKeys()
                if config.issuers.contains(where: { $0.issuer == issuer }) {
                    throw ConfigError(file: file, line: entry.line, "issuer '\(issuer)' is listed twice")
                }
                config.issuers.append(.init(issuer: issuer, tenant: tenant, audience: audience, keys: keys, line: entry.line))
            }
        }
        try auth.rejectUnknownKeys()
        if !config.clientCertificates && config.issuers.isEmpty {
            throw ConfigError(
                file: file, line: auth.line,
                "'auth.client_certificates: false' needs at least one entry in 'auth.issuers' (nobody could call)")
        }
        return config
    }

    /// Loads the issuers' public keys.
    /// - Throws: a config error naming the issuer's line and the key file that cannot be used.
    package func tokenIssuers() throws(ConfigError) -> [TokenIssuer] {
        var result: [TokenIssuer] = []
        for issuer in auth.issuers {
            var keys: [JWSPublicKey] = []
            for key in issuer.keys {
                guard let pem = FileManager.default.contents(atPath: key.file) else {
                    throw ConfigError(file: sourceFile, line: issuer.line, "'auth.issuers' key file \(key.file) cannot be read")
                }
                do {
                    keys.append(try JWSPublicKey(pem: Array(pem), kid: key.kid))
                } catch {
                    throw ConfigError(file: sourceFile, line: issuer.line, "'auth.issuers' key file \(key.file): \(error)")
                }
            }
            result.append(TokenIssuer(issuer: issuer.issuer, tenant: issuer.tenant, audience: issuer.audience, keys: keys))
        }
        return result
    }
}
