import Crypto
import CryptoExtras
import Foundation
import SwiftASN1

/// The JWS signature algorithms EdgeCache accepts on bearer tokens. `none`, the HMAC family and
/// everything else are refused by construction: they have no case here.
package enum JWSAlgorithm: String, Sendable, CaseIterable {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    case rs256 = "RS256"
    /// ECDSA on P-256 with SHA-256; the signature is raw `r || s`, 32 bytes each.
    case es256 = "ES256"
    /// ECDSA on P-384 with SHA-384; the signature is raw `r || s`, 48 bytes each.
    case es384 = "ES384"
}

/// A public key that verifies JWS signatures, loaded from PEM (`-----BEGIN PUBLIC KEY-----`)
/// with swift-crypto: RSA (2048 bits or more), EC P-256 or EC P-384.
///
/// ```swift
/// let key = try JWSPublicKey(pem: Array(pemFileBytes), kid: "2025-01")
/// let ok = key.verify(.es256, signingInput: Array("header.payload".utf8), signature: raw)
/// ```
package struct JWSPublicKey: Sendable {
    /// What kind of key this is; decides the one algorithm it verifies.
    package enum Kind: String, Sendable {
        case rsa, p256, p384
    }

    private enum Backing: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
    }

    private let backing: Backing
    /// An optional key id, matched against a token's `kid` header when both are present.
    package let kid: String?

    /// Loads the first PEM public key of `pem` (other blocks and text around it are skipped).
    package init(pem: [UInt8], kid: String? = nil) throws(CryptoError) {
        guard !pem.isEmpty, pem.count < 1 << 20 else { throw CryptoError("cannot read the public key") }
        let documents = (try? PEMDocument.parseMultiple(pemString: String(decoding: pem, as: UTF8.self))) ?? []
        guard let der = documents.first(where: { $0.discriminator == "PUBLIC KEY" })?.derBytes else {
            throw CryptoError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")
        }
        // Each initialiser accepts only its own key type (and curve): the first that takes it says what it is.
        if let key = try? P256.Signing.PublicKey(derRepresentation: der) {
            backing = .p256(key)
        } else if let key = try? P384.Signing.PublicKey(derRepresentation: der) {
            backing = .p384(key)
        } else if let key = try? _RSA.Signing.PublicKey(derRepresentation: der) {
            // swift-crypto's checked initialiser refuses RSA keys under 2048 bits.
            backing = .rsa(key)
        } else {
            throw CryptoError("the key must be RSA (2048 bits or more) or EC P-256/P-384")
        }
        self.kid = kid
    }

    package var kind: Kind {
        switch backing {
        case .rsa: .rsa
        case .p256: .p256
        case .p384: .p384
        }
    }

    /// The one algorithm this key verifies.
    package var algorithm: JWSAlgorithm {
        switch backing {
        case .rsa: .rs256
        case .p256: .es256
        case .p384: .es384
        }
    }

    /// Whether `signature` (as carried in a JWS: PKCS#1 v1.5 bytes for RSA, raw `r || s` for
    /// ECDSA) signs `signingInput` under `algorithm` with this key. A key never verifies an
    /// algorithm other than its own, and a raw ECDSA signature of the wrong length never verifies.
    package func verify(
        _ algorithm: JWSAlgorithm, signingInput: some DataProtocol, signature: some DataProtocol
    ) -> Bool {
        switch (backing, algorithm) {
        case (.p256(let key), .es256):
            guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(signature, for: SHA256.hash(data: signingInput))
        case (.p384(let key), .es384):
            guard let signature = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(signature, for: SHA384.hash(data: signingInput))
        case (.rsa(let key), .rs256):
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: signingInput),
                padding: .insecurePKCS1v1_5)
        default:
            return false
        }
    }
}

/// ECDSA signature encodings: a JWS carries raw `r || s`, `openssl dgst -sign` writes DER
/// `ECDSA-Sig-Value`. The node verifies raw signatures directly; signers that use the openssl
/// CLI (the test kit) convert with these. Done by swift-crypto's signature types.
package enum JWSSignature {
    /// Converts a raw `r || s` signature (each `coordinateSize` bytes, big-endian: 32 for
    /// P-256, 48 for P-384) to DER; nil if the length or size is wrong.
    package static func der(fromRaw raw: [UInt8], coordinateSize: Int) -> [UInt8]? {
        switch coordinateSize {
        case 32: (try? P256.Signing.ECDSASignature(rawRepresentation: raw)).map { Array($0.derRepresentation) }
        case 48: (try? P384.Signing.ECDSASignature(rawRepresentation: raw)).map { Array($0.derRepresentation) }
        default: nil
        }
    }

    /// Converts a DER `ECDSA-Sig-Value` to raw `r || s` (what a JWS signer sends); nil if it is
    /// not valid DER or a value does not fit.
    package static func raw(fromDER der: [UInt8], coordinateSize: Int) -> [UInt8]? {
        switch coordinateSize {
        case 32: (try? P256.Signing.ECDSASignature(derRepresentation: der)).map { Array($0.rawRepresentation) }
        case 48: (try? P384.Signing.ECDSASignature(derRepresentation: der)).map { Array($0.rawRepresentation) }
        default: nil
        }
    }
}
