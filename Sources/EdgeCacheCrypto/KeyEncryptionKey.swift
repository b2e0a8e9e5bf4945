import Foundation

/// The key-encryption key (KEK): 32 random bytes, base64 in a file of mode 0600.
///
/// It never encrypts data itself; it wraps the per-tenant data keys stored beside the data.
package struct KeyEncryptionKey: Sendable {
    let bytes: [UInt8]

    /// A new random KEK.
    package static func generate() throws(CryptoError) -> KeyEncryptionKey {
        KeyEncryptionKey(bytes: try SecureRandom.bytes(32))
    }

    /// Loads a KEK file. Refuses files readable by group or others.
    package static func load(path: String) throws(CryptoError) -> KeyEncryptionKey {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else {
            throw CryptoError("cannot read kek_file \(path): no such file (make one with: edgecache keys init --kek-file \(path))")
        }
        guard mode & 0o077 == 0 else {
            throw CryptoError("kek_file \(path) is readable by group or others; run: chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CryptoError("cannot read kek_file \(path)")
        }
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32
        else { throw CryptoError("kek_file \(path) must hold 32 bytes in base64 (make one with: edgecache keys init)") }
        return KeyEncryptionKey(bytes: Array(data))
    }

    /// Writes the KEK to a new file with mode 0600 (temp file, fsync, rename). Never overwrites.
    package func write(toNewFile path: String) throws(CryptoError) {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw CryptoError("\(path) already exists; refusing to overwrite a key-encryption key")
        }
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw CryptoError("cannot create \(temp): \(String(cString: strerror(errno)))") }
        let text = Array((Data(bytes).base64EncodedString() + "\n").utf8)
        let written = text.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced, rename(temp, path) == 0 else {
            unlink(temp)
            throw CryptoError("cannot write \(path)")
        }
    }

    static func wrapAAD(tenant: String, version: UInt32) -> [UInt8] {
        Array("edgecache-dek-v1|\(tenant)|\(version)".utf8)
    }

    /// Seals a data key under this KEK, bound to its tenant and version.
    package func wrap(dataKey: [UInt8], tenant: String, version: UInt32) throws(CryptoError) -> [UInt8] {
        try AESGCM.seal(dataKey, key: bytes, aad: Self.wrapAAD(tenant: tenant, version: version))
    }

    /// Opens a wrapped data key. Fails if this is not the KEK that wrapped it.
    package func unwrap(_ wrapped: [UInt8], tenant: String, version: UInt32) throws(CryptoError) -> [UInt8] {
        do {
            return try AESGCM.open(wrapped, key: bytes, aad: Self.wrapAAD(tenant: tenant, version: version))
        } catch {
            throw CryptoError("the key-encryption key cannot unwrap data key v\(version) of tenant \(tenant) (wrong kek_file?)")
        }
    }
}

/// A tenant's data key and the keys derived from it.
package struct TenantKeys: Sendable {
    package let tenant: String
    package let version: UInt32
    let dataKey: [UInt8]
    let indexKey: [UInt8]

    /// A data key whose index key is derived from itself (a tenant's first key).
    package init(tenant: String, version: UInt32, dataKey: [UInt8]) {
        self.init(tenant: tenant, version: version, dataKey: dataKey, indexKey: Self.deriveIndexKey(from: dataKey))
    }

    /// A data key with a given index key: after a rotation every version keeps the tenant's
    /// first index key, so lookup keys (ids and index terms) stay stable.
    package init(tenant: String, version: UInt32, dataKey: [UInt8], indexKey: [UInt8]) {
        self.tenant = tenant
        self.version = version
        self.dataKey = dataKey
        self.indexKey = indexKey
    }

    /// The index key a tenant's first data key implies (how stores made before rotation existed derive it).
    package static func deriveIndexKey(from dataKey: [UInt8]) -> [UInt8] {
        HMACSHA256.mac(key: dataKey, data: Array("edgecache-index-v1".utf8))
    }

    /// The same index key with another data key version.
    package func withDataKey(_ dataKey: [UInt8], version: UInt32) -> TenantKeys {
        TenantKeys(tenant: tenant, version: version, dataKey: dataKey, indexKey: indexKey)
    }

    /// The index key, for wrapping (stored as `data_keys` version 0 once a tenant has rotated).
    package var rawIndexKey: [UInt8] { indexKey }

    /// A fresh random data key.
    package static func generate(tenant: String, version: UInt32) throws(CryptoError) -> TenantKeys {
        TenantKeys(tenant: tenant, version: version, dataKey: try SecureRandom.bytes(32))
    }

    /// The data key, for wrapping.
    package var rawDataKey: [UInt8] { dataKey }

    /// A keyed hash (HMAC-SHA256) of `text`: the only form in which ids and index terms are stored.
    package func lookupKey(_ text: String) -> [UInt8] {
        HMACSHA256.mac(key: indexKey, data: Array(text.utf8))
    }
}
