import EdgeCacheCore
import EdgeCacheCrypto

/// The plaintext inside a sealed row: `Type/id\n` then the resource JSON (empty for a deletion).
enum ResourceBlob {
    static func encode(_ r: ResourceVersion) -> [UInt8] {
        var out = Array("\(r.type)/\(r.id)\n".utf8)
        out.append(contentsOf: r.json)
        return out
    }

    static func decode(_ bytes: [UInt8], version: Int64, lastUpdated: Int64, deleted: Bool) throws -> ResourceVersion {
        guard let newline = bytes.firstIndex(of: 0x0A), let slash = bytes[..<newline].firstIndex(of: UInt8(ascii: "/"))
        else { throw StoreError("corrupt resource blob") }
        let type = String(decoding: bytes[..<slash], as: UTF8.self)
        let id = String(decoding: bytes[(slash + 1)..<newline], as: UTF8.self)
        return ResourceVersion(
            type: type, id: id, version: version, lastUpdated: lastUpdated, deleted: deleted,
            json: Array(bytes[(newline + 1)...]))
    }

    /// Lookup key of a resource: HMAC(tenant index key, "Type/id").
    static func key(_ keys: TenantKeys, type: String, id: String) -> [UInt8] { keys.lookupKey("r|\(type)/\(id)") }

    /// Lookup key of a type: HMAC(tenant index key, "Type").
    static func typeKey(_ keys: TenantKeys, type: String) -> [UInt8] { keys.lookupKey("t|\(type)") }

    /// Lookup key of a search term within a type.
    static func termKey(_ keys: TenantKeys, type: String, term: String) -> [UInt8] { keys.lookupKey("s|\(type)|\(term)") }
}
