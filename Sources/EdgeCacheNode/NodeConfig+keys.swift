import EdgeCacheCrypto
import EdgeCacheStore

extension NodeConfig {
    /// The store files whose data keys the KEK wraps: the role's store and the audit store.
    package var keyedStoreFiles: [String] {
        [dataDir + (role == .origin ? "/origin.sqlite" : "/edge.sqlite"), dataDir + "/audit.sqlite"]
    }

    /// Loads `keys.kek_file` with the checks `serve` makes (mode 0600, 32 bytes in base64); an
    /// error names the config line of `keys.kek_file`.
    package func loadKEK() throws(ConfigError) -> KeyEncryptionKey {
        do {
            return try KeyEncryptionKey.load(path: kekFile)
        } catch {
            throw ConfigError(file: sourceFile, line: kekLine, error.description)
        }
    }

    /// ``loadKEK()``, then checks that the KEK opens the data keys of the stores that already
    /// exist in `data_dir` (read only; nothing is created or changed). `serve` and `config check`
    /// both call it, so they accept and refuse the same KEK files.
    @discardableResult
    package func openKEK() throws(ConfigError) -> KeyEncryptionKey {
        let kek = try loadKEK()
        for file in keyedStoreFiles {
            do {
                try KEKCheck.verify(storeFile: file, kek: kek)
            } catch {
                throw ConfigError(file: sourceFile, line: kekLine, "keys.kek_file \(kekFile): \(error)")
            }
        }
        return kek
    }
}
