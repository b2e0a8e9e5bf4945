import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Logging

/// Cached entries that fail authentication: the store quarantines them (``CorruptEntryError``);
/// here they are logged (type only, never an id) and treated as misses, so the origin answers.
extension EdgeBackend {
    /// The cached entry, or nil when there is none or it was just quarantined.
    /// - Returns: also whether it was quarantined (for a clearer 503 while the origin is away).
    func cachedEntry(type: String, id: String) async throws -> (entry: CachedEntry?, quarantined: Bool) {
        do {
            return (try await store.entries.get(type: type, id: id), false)
        } catch let error as CorruptEntryError {
            reportQuarantine(error, type: type)
            return (nil, true)
        }
    }

    func reportQuarantine(_ error: CorruptEntryError, type: String) {
        logger.warning(
            "cached entry failed authentication; quarantined, the origin answers instead",
            metadata: ["type": .string(type), "entries": .stringConvertible(error.count)])
    }

    /// 503 for a request the cache cannot answer completely because of a quarantined entry.
    func quarantinedUnavailable(_ what: String) -> FHIRError {
        .unavailable(
            "A cached copy needed for \(what) failed its integrity check and was removed; the origin is unreachable, so it cannot be fetched again yet",
            retryAfter: 5)
    }
}
