import EdgeCacheCrypto
import Foundation
import Testing

@Suite struct ZlibTests {
    @Test func roundTripsAndBoundsDecompression() throws {
        let data = Array(String(repeating: "FHIR ", count: 1000).utf8)
        let compressed = try Zlib.compress(data)
        #expect(compressed.count < data.count / 10)
        #expect(try Zlib.decompress(compressed) == data)
        #expect(try Zlib.decompress(try Zlib.compress([])) == [])
        var bomb = compressed
        bomb[0] = 0x7F  // claims ~2 GB
        #expect(throws: CryptoError.self) { try Zlib.decompress(bomb) }
        var corrupt = compressed
        corrupt[10] ^= 0xFF
        #expect(throws: CryptoError.self) { try Zlib.decompress(corrupt) }
    }

    @Test func streamingPiecesDecodeOnArrival() throws {
        let deflater = try ZlibDeflater()
        let inflater = try ZlibInflater()
        for i in 0..<50 {
            let piece = Array("line \(i)\n".utf8)
            #expect(try inflater.decompress(deflater.compress(piece)) == piece)
        }
        #expect(throws: CryptoError.self) { try ZlibInflater().decompress([0xDE, 0xAD, 0xBE, 0xEF]) }
    }
}

@Suite struct AESGCMTests {
    let key = [UInt8](repeating: 7, count: 32)

    @Test func sealsAndOpens() throws {
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, aad: [1, 2])
        #expect(sealed.count == 12 + 6 + 16)
        #expect(try AESGCM.open(sealed, key: key, aad: [1, 2]) == Array("secret".utf8))
        #expect(try AESGCM.open(try AESGCM.seal([], key: key, aad: []), key: key, aad: []) == [])
    }

    @Test func detectsAnyChange() throws {
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, aad: [1, 2])
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: key, aad: [1, 3]) }
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed, key: [UInt8](repeating: 8, count: 32), aad: [1, 2]) }
        for index in [0, 12, sealed.count - 1] {
            var tampered = sealed
            tampered[index] ^= 1
            #expect(throws: CryptoError.self) { try AESGCM.open(tampered, key: key, aad: [1, 2]) }
        }
        #expect(throws: CryptoError.self) { try AESGCM.open(sealed.prefix(10), key: key, aad: []) }
    }

    @Test func noncesDiffer() throws {
        let a = try AESGCM.seal([1], key: key, aad: [])
        let b = try AESGCM.seal([1], key: key, aad: [])
        #expect(a != b)
    }

    @Test func hmacMatchesRFC4231Case2() {
        let mac = HMACSHA256.mac(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(mac.map { String(format: "%02x", $0) }.joined() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

@Suite struct KeyTests {
    func tempPath() -> String { NSTemporaryDirectory() + "kek-\(UUID().uuidString)" }

    @Test func kekFileIsPrivateAndNeverOverwritten() throws {
        let path = tempPath()
        defer { unlink(path) }
        try KeyEncryptionKey.generate().write(toNewFile: path)
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        _ = try KeyEncryptionKey.load(path: path)
        #expect(throws: CryptoError.self) { try KeyEncryptionKey.generate().write(toNewFile: path) }
        chmod(path, 0o644)
        #expect(throws: CryptoError.self) { try KeyEncryptionKey.load(path: path) }
    }

    @Test func rejectsMalformedKEKFiles() throws {
        let path = tempPath()
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data("not base64!".utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: CryptoError.self) { try KeyEncryptionKey.load(path: path) }
        #expect(throws: CryptoError.self) { try KeyEncryptionKey.load(path: path + "-missing") }
    }

    @Test func wrappedDataKeyOpensOnlyWithItsKEKTenantAndVersion() throws {
        let kek = try KeyEncryptionKey.generate()
        let keys = try TenantKeys.generate(tenant: "a", version: 1)
        let wrapped = try kek.wrap(dataKey: keys.rawDataKey, tenant: "a", version: 1)
        #expect(try kek.unwrap(wrapped, tenant: "a", version: 1) == keys.rawDataKey)
        #expect(throws: CryptoError.self) { try kek.unwrap(wrapped, tenant: "b", version: 1) }
        #expect(throws: CryptoError.self) { try KeyEncryptionKey.generate().unwrap(wrapped, tenant: "a", version: 1) }
    }

    @Test func sealerBindsBlobToItsRow() throws {
        let keys = try TenantKeys.generate(tenant: "a", version: 1)
        let sealer = Sealer(keys: keys)
        let rowKey = keys.lookupKey("Patient/p1")
        let blob = try sealer.seal(Array("{\"name\":\"Ada\"}".utf8), aad: Sealer.aad(lookupKey: rowKey, version: 1))
        #expect(!String(decoding: blob, as: UTF8.self).contains("Ada"))
        #expect(try sealer.open(blob, aad: Sealer.aad(lookupKey: rowKey, version: 1)) == Array("{\"name\":\"Ada\"}".utf8))
        #expect(throws: CryptoError.self) { try sealer.open(blob, aad: Sealer.aad(lookupKey: rowKey, version: 2)) }
        #expect(throws: CryptoError.self) {
            try sealer.open(blob, aad: Sealer.aad(lookupKey: keys.lookupKey("Patient/p2"), version: 1))
        }
        #expect(keys.lookupKey("x") != TenantKeys(tenant: "b", version: 1, dataKey: [UInt8](repeating: 1, count: 32)).lookupKey("x"))
    }
}
