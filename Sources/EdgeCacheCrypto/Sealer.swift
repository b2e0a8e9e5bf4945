/// Compresses then seals blobs under a tenant's data key.
///
/// Layout: `0x01 || key version (4, big endian) || AES-256-GCM(zlib(plaintext))`. The AAD the
/// caller passes (lookup key and version) binds each blob to the row it belongs in, so a blob
/// copied to another row does not open.
package struct Sealer: Sendable {
    package let keys: TenantKeys

    package init(keys: TenantKeys) {
        self.keys = keys
    }

    package func seal(_ plaintext: [UInt8], aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        let compressed = try Zlib.compress(plaintext)
        let v = keys.version
        var out = Self.versionPrefix(v)
        out.append(contentsOf: try AESGCM.seal(compressed, key: keys.dataKey, aad: aad))
        return out
    }

    /// The data key version that sealed `blob` (nil if it is not a sealed blob).
    package static func keyVersion(of sealed: some Collection<UInt8>) -> UInt32? {
        guard sealed.count > 5 else { return nil }
        var bytes = sealed.makeIterator()
        guard bytes.next() == 1 else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(bytes.next()!) }
        return v
    }

    /// The 4-byte big-endian version field of blobs sealed under `version`.
    package static func versionPrefix(_ version: UInt32) -> [UInt8] {
        [1, UInt8(version >> 24), UInt8(version >> 16 & 0xFF), UInt8(version >> 8 & 0xFF), UInt8(version & 0xFF)]
    }

    package func open(_ sealed: [UInt8], aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard sealed.count > 5, sealed[0] == 1 else { throw CryptoError("unknown sealed blob format") }
        let v = UInt32(sealed[1]) << 24 | UInt32(sealed[2]) << 16 | UInt32(sealed[3]) << 8 | UInt32(sealed[4])
        guard v == keys.version else { throw CryptoError("blob sealed under data key v\(v), have v\(keys.version)") }
        let compressed = try AESGCM.open(sealed[5...], key: keys.dataKey, aad: aad)
        return try Zlib.decompress(compressed)
    }

    /// The AAD for a resource version: `lookupKey || version`.
    package static func aad(lookupKey: [UInt8], version: Int64) -> [UInt8] {
        var aad = lookupKey
        for shift in stride(from: 56, through: 0, by: -8) { aad.append(UInt8(truncatingIfNeeded: version >> Int64(shift))) }
        return aad
    }
}
