import COpenSSLCrypto

/// AES-256-GCM through the system's OpenSSL libcrypto (EVP).
///
/// Output layout: `nonce(12) || ciphertext || tag(16)`. Nonces are random (RAND_bytes); with
/// 96-bit random nonces a key must not seal more than 2^32 messages (keys rotate long before).
package enum AESGCM {
    package static let keySize = 32
    package static let nonceSize = 12
    package static let tagSize = 16

    /// Encrypts and authenticates `plaintext`, binding `aad`.
    package static func seal(_ plaintext: [UInt8], key: [UInt8], aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == keySize else { throw CryptoError("AES-256-GCM needs a 32-byte key") }
        let nonce = try SecureRandom.bytes(nonceSize)
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError("EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: nonceSize + plaintext.count + tagSize)
        let ok: Bool = out.withUnsafeMutableBufferPointer { o in
            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil) == 1,
                EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
            else { return false }
            var length: Int32 = 0
            if !aad.isEmpty {
                guard EVP_EncryptUpdate(ctx, nil, &length, aad, Int32(aad.count)) == 1 else { return false }
            }
            let base = o.baseAddress!
            for i in 0..<nonceSize { base[i] = nonce[i] }
            var written: Int32 = 0
            if !plaintext.isEmpty {
                guard EVP_EncryptUpdate(ctx, base + nonceSize, &written, plaintext, Int32(plaintext.count)) == 1
                else { return false }
            }
            var finalLength: Int32 = 0
            guard EVP_EncryptFinal_ex(ctx, base + nonceSize + Int(written), &finalLength) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(
                ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagSize), base + nonceSize + plaintext.count) == 1
        }
        guard ok else { throw CryptoError("AES-256-GCM seal failed") }
        return out
    }

    /// Verifies and decrypts; throws if the key, the AAD or any byte differs.
    package static func open(_ sealed: some Collection<UInt8>, key: [UInt8], aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == keySize else { throw CryptoError("AES-256-GCM needs a 32-byte key") }
        let sealed = Array(sealed)
        guard sealed.count >= nonceSize + tagSize else { throw CryptoError("sealed data too short") }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError("EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let cipherLength = sealed.count - nonceSize - tagSize
        var out = [UInt8](repeating: 0, count: max(cipherLength, 1))
        var tag = Array(sealed[(nonceSize + cipherLength)...])
        let ok: Bool = sealed.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                let base = s.baseAddress!
                guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil) == 1,
                    EVP_DecryptInit_ex(ctx, nil, nil, key, base) == 1
                else { return false }
                var length: Int32 = 0
                if !aad.isEmpty {
                    guard EVP_DecryptUpdate(ctx, nil, &length, aad, Int32(aad.count)) == 1 else { return false }
                }
                if cipherLength > 0 {
                    guard EVP_DecryptUpdate(ctx, o.baseAddress, &length, base + nonceSize, Int32(cipherLength)) == 1
                    else { return false }
                }
                guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagSize), &tag) == 1 else { return false }
                var finalLength: Int32 = 0
                return EVP_DecryptFinal_ex(ctx, o.baseAddress! + Int(length), &finalLength) == 1
            }
        }
        guard ok else { throw CryptoError("AES-256-GCM authentication failed (wrong key, AAD or corrupted data)") }
        if cipherLength == 0 { return [] }
        return out
    }
}

/// Cryptographically secure random bytes from OpenSSL.
package enum SecureRandom {
    package static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw CryptoError("RAND_bytes failed") }
        return out
    }
}

/// HMAC-SHA256 through OpenSSL.
package enum HMACSHA256 {
    package static func mac(key: [UInt8], data: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        let data = Array(data)
        // Only fails when OpenSSL cannot allocate; a MAC of zeros would make every lookup key
        // equal, so stop rather than go on.
        let result = HMAC(EVP_sha256(), key, Int32(key.count), data, data.count, &out, &length)
        precondition(result != nil && length == 32, "HMAC-SHA256 failed in OpenSSL")
        return out
    }
}

/// SHA-256 through OpenSSL.
package enum SHA256Digest {
    package static func hash(_ data: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let data = Array(data)
        var length: UInt32 = 32
        // As above: a digest of zeros would make different inputs look equal.
        precondition(EVP_Digest(data, data.count, &out, &length, EVP_sha256(), nil) == 1 && length == 32, "SHA-256 failed in OpenSSL")
        return out
    }
}
