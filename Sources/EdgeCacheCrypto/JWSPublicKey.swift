import COpenSSLCrypto

/// The JWS signature algorithms EdgeCache accepts on bearer tokens. `none`, the HMAC family and
/// everything else are refused by construction: they have no case here.
package enum JWSAlgorithm: String, Sendable, CaseIterable {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    case rs256 = "RS256"
    /// ECDSA on P-256 with SHA-256; the signature is raw `r || s`, 32 bytes each.
    case es256 = "ES256"
    /// ECDSA on P-384 with SHA-384; the signature is raw `r || s`, 48 bytes each.
    case es384 = "ES384"

    /// Bytes of each of `r` and `s` in a raw ECDSA signature (nil for RSA).
    var ecCoordinateSize: Int? {
        switch self {
        case .rs256: nil
        case .es256: 32
        case .es384: 48
        }
    }
}

/// A public key that verifies JWS signatures, loaded from PEM (`-----BEGIN PUBLIC KEY-----`)
/// through the system's libcrypto: RSA (2048 bits or more), EC P-256 or EC P-384.
///
/// ```swift
/// let key = try JWSPublicKey(pemFile: "certs/idp.pub.pem")
/// let ok = key.verify(.es256, signingInput: Array("header.payload".utf8), signature: raw)
/// ```
package final class JWSPublicKey: @unchecked Sendable {
    /// What kind of key this is; decides the one algorithm it verifies.
    package enum Kind: String, Sendable {
        case rsa, p256, p384
    }

    private let pkey: OpaquePointer
    package let kind: Kind
    /// An optional key id, matched against a token's `kid` header when both are present.
    package let kid: String?

    /// Loads a PEM public key. Immutable afterwards, so safe to share between threads.
    package init(pem: [UInt8], kid: String? = nil) throws(CryptoError) {
        guard !pem.isEmpty, pem.count < 1 << 20 else { throw CryptoError("cannot read the public key") }
        // The memory BIO reads the bytes in place, so it must not outlive this closure.
        let loaded: OpaquePointer? = pem.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let key = loaded else {
            ERR_clear_error()
            throw CryptoError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")
        }
        let kind: Kind
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA where EVP_PKEY_get_bits(key) >= 2048:
            kind = .rsa
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1 else {
                EVP_PKEY_free(key)
                throw CryptoError("cannot read the EC key's curve")
            }
            switch String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) {
            case "prime256v1", "P-256": kind = .p256
            case "secp384r1", "P-384": kind = .p384
            default:
                EVP_PKEY_free(key)
                throw CryptoError("EC keys must be on P-256 or P-384")
            }
        default:
            EVP_PKEY_free(key)
            throw CryptoError("the key must be RSA (2048 bits or more) or EC P-256/P-384")
        }
        self.pkey = key
        self.kind = kind
        self.kid = kid
    }

    deinit { EVP_PKEY_free(pkey) }

    /// The one algorithm this key verifies.
    package var algorithm: JWSAlgorithm {
        switch kind {
        case .rsa: .rs256
        case .p256: .es256
        case .p384: .es384
        }
    }

    /// Whether `signature` (as carried in a JWS: PKCS#1 v1.5 bytes for RSA, raw `r || s` for
    /// ECDSA) signs `signingInput` under `algorithm` with this key. A key never verifies an
    /// algorithm other than its own.
    package func verify(_ algorithm: JWSAlgorithm, signingInput: [UInt8], signature: [UInt8]) -> Bool {
        guard algorithm == self.algorithm else { return false }
        let encoded: [UInt8]
        if let size = algorithm.ecCoordinateSize {
            guard let der = JWSSignature.der(fromRaw: signature, coordinateSize: size) else { return false }
            encoded = der
        } else {
            encoded = signature
        }
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        let digest = algorithm == .es384 ? EVP_sha384() : EVP_sha256()
        guard EVP_DigestVerifyInit(ctx, nil, digest, nil, pkey) == 1 else {
            ERR_clear_error()
            return false
        }
        let result = EVP_DigestVerify(ctx, encoded, encoded.count, signingInput, signingInput.count)
        ERR_clear_error()
        return result == 1
    }
}

/// ECDSA signature encodings: JWS carries raw `r || s`, libcrypto verifies DER `ECDSA-Sig-Value`.
package enum JWSSignature {
    /// Converts a raw `r || s` signature (each `coordinateSize` bytes, big-endian) to DER; nil
    /// if the length is wrong.
    package static func der(fromRaw raw: [UInt8], coordinateSize: Int) -> [UInt8]? {
        guard raw.count == 2 * coordinateSize, let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let r = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32(coordinateSize), nil) }
        let s = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + coordinateSize, Int32(coordinateSize), nil) }
        guard let r, let s else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        // On success the signature owns r and s.
        guard ECDSA_SIG_set0(sig, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_ECDSA_SIG(sig, &cursor)
        }
        return written == length ? out : nil
    }

    /// Converts a DER `ECDSA-Sig-Value` to raw `r || s` (what a JWS signer sends); nil if it is
    /// not valid DER or a value does not fit.
    package static func raw(fromDER der: [UInt8], coordinateSize: Int) -> [UInt8]? {
        let sig: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let sig else { return nil }
        defer { ECDSA_SIG_free(sig) }
        var out = [UInt8](repeating: 0, count: 2 * coordinateSize)
        let ok = out.withUnsafeMutableBufferPointer { buffer -> Bool in
            BN_bn2binpad(ECDSA_SIG_get0_r(sig), buffer.baseAddress, Int32(coordinateSize)) == Int32(coordinateSize)
                && BN_bn2binpad(ECDSA_SIG_get0_s(sig), buffer.baseAddress! + coordinateSize, Int32(coordinateSize))
                    == Int32(coordinateSize)
        }
        return ok ? out : nil
    }
}
