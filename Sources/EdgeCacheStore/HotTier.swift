import EdgeCacheCore
import Foundation
import Synchronization

/// The edge's in-memory hot tier: the plaintext of recently read entries, so that a repeated
/// read skips AES-GCM unsealing, inflating and decoding.
///
/// It never answers on its own: every read still fetches the entry's sealed row from SQLite
/// (the source of truth) and uses the remembered plaintext only when the row's sealed bytes are
/// exactly the ones it was made from. A purge, an eviction, a key shred, a re-seal after a key
/// rotation or a newer version therefore take effect at once, whoever changed the file. Entries
/// live in process memory only (never written anywhere) and die with the process; the budget
/// (`cache.hot_bytes`) bounds the plaintext held, least recently read first out.
package final class HotTier: Sendable {
    struct Item {
        var sealed: Data
        var resource: ResourceVersion
        var lastUse: UInt64
        var bytes: Int { sealed.count + resource.json.count + 128 }
    }

    struct State {
        var items: [Data: Item] = [:]
        var bytes = 0
        var tick: UInt64 = 0
        var hits: Int64 = 0
        var misses: Int64 = 0
    }

    /// The budget in bytes (plaintext and sealed copy of each entry); 0 turns the tier off.
    package let budget: Int
    private let state = Mutex(State())

    package init(budget: Int) {
        self.budget = max(0, budget)
    }

    /// The remembered plaintext of the entry stored under `rkey` as `sealed`, if any.
    func lookup(_ rkey: Data, sealed: Data) -> ResourceVersion? {
        guard budget > 0 else { return nil }
        return state.withLock { s in
            // One hash of the key: the entry is found, checked and touched by its index.
            guard let index = s.items.index(forKey: rkey), s.items.values[index].sealed == sealed else {
                s.misses += 1
                return nil
            }
            s.tick += 1
            s.items.values[index].lastUse = s.tick
            s.hits += 1
            return s.items.values[index].resource
        }
    }

    /// Remembers the plaintext of the entry stored under `rkey` as `sealed`.
    func remember(_ rkey: Data, sealed: Data, resource: ResourceVersion) {
        guard budget > 0 else { return }
        state.withLock { s in
            s.tick += 1
            let item = Item(sealed: sealed, resource: resource, lastUse: s.tick)
            guard item.bytes <= budget / 8 else { return }
            if let old = s.items.updateValue(item, forKey: rkey) { s.bytes -= old.bytes }
            s.bytes += item.bytes
            if s.bytes > budget { Self.shrink(&s, to: budget * 3 / 4) }
        }
    }

    /// Drops one entry (its row was purged).
    func forget(_ rkey: Data) {
        state.withLock { s in
            if let old = s.items.removeValue(forKey: rkey) { s.bytes -= old.bytes }
        }
    }

    /// Drops everything (key shred).
    package func clear() {
        state.withLock { s in
            s.items.removeAll()
            s.bytes = 0
        }
    }

    /// Entries held, bytes held, hits and misses since start.
    package var stats: (entries: Int, bytes: Int, hits: Int64, misses: Int64) {
        state.withLock { ($0.items.count, $0.bytes, $0.hits, $0.misses) }
    }

    /// Drops the least recently read entries until at most `target` bytes are held.
    private static func shrink(_ s: inout State, to target: Int) {
        let byAge = s.items.sorted { $0.value.lastUse < $1.value.lastUse }
        for (key, item) in byAge {
            guard s.bytes > target else { break }
            s.items[key] = nil
            s.bytes -= item.bytes
        }
    }
}
