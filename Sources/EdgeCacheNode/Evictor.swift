import EdgeCacheCore
import EdgeCacheStore
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the edge cache within its byte budget (`cache.max_bytes`) and its classes' retention.
///
/// Only classes replicated `resident` are ever evicted (a `full` class must be there in a
/// downtime): lowest eviction priority first, least recently read first within a priority.
/// Reads of resident entries are noted in memory and written in batches, so reads stay fast.
package final class Evictor: Service {
    let store: EdgeStore
    let policies: PolicyHolder
    let audit: AuditLog
    let tenant: String
    let maxBytes: Int64?
    let intervalMilliseconds: Int
    let clock: any WallClock
    let logger: Logger
    private let accessed = Mutex<[String: (type: String, id: String, at: Int64)]>([:])
    private let state = Mutex<(fullBytes: Int64, measuredAt: Int64?, residentBytes: Int64)>((0, nil, 0))

    package init(
        store: EdgeStore, policies: PolicyHolder, audit: AuditLog, tenant: String, maxBytes: Int64?, intervalMilliseconds: Int,
        clock: any WallClock, logger: Logger
    ) {
        self.store = store
        self.policies = policies
        self.audit = audit
        self.tenant = tenant
        self.maxBytes = maxBytes
        self.intervalMilliseconds = intervalMilliseconds
        self.clock = clock
        self.logger = logger
    }

    /// Notes a read (resident classes only; full classes are never evicted).
    package func touched(type: String, id: String) {
        guard policies.policy(forType: type).replication == .resident else { return }
        let now = clock.nowMillis()
        accessed.withLock { $0["\(type)/\(id)"] = (type, id, now) }
    }

    /// The estimated size of the cache (sealed entry bytes) and when full classes were last measured.
    package var estimatedBytes: Int64 { state.withLock { $0.fullBytes + $0.residentBytes } }

    package func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(self.intervalMilliseconds))
                do {
                    try await self.pass()
                } catch {
                    self.logger.warning("eviction pass failed", metadata: ["error": "\(type(of: error))"])
                }
            }
        }
        try? await flushAccess()
    }

    func flushAccess() async throws {
        let batch = accessed.withLock { all -> [(type: String, id: String, at: Int64)] in
            defer { all.removeAll(keepingCapacity: true) }
            return Array(all.values)
        }
        try await store.eviction.recordAccess(batch)
    }

    /// Resident types grouped by eviction priority, lowest first.
    func residentGroups() -> [(priority: Int, types: [String], policy: ClassPolicy)] {
        let registry = policies.registry
        var groups: [Int: (types: [String], policy: ClassPolicy)] = [:]
        for (type, dataClass) in registry.typeClasses {
            let policy = registry.policy(for: dataClass)
            guard policy.replication == .resident else { continue }
            groups[policy.evictionPriority, default: ([], policy)].types.append(type)
        }
        return groups.keys.sorted().map { ($0, groups[$0]!.types.sorted(), groups[$0]!.policy) }
    }

    /// One pass: retention first, then the byte budget.
    package func pass() async throws {
        try await flushAccess()
        let groups = residentGroups()
        let now = clock.nowMillis()
        var evicted: [EvictedEntry] = []
        for group in groups {
            guard let days = group.policy.retentionDays else { continue }
            evicted += try await store.eviction.evictUnreadSince(now - Int64(days) * 86_400_000, types: group.types)
        }
        let residentTypes = groups.flatMap(\.types)
        var resident = try await store.eviction.entryBytes(types: residentTypes)
        let measured = state.withLock { $0.measuredAt }
        if maxBytes != nil, measured == nil || now - measured! > 300_000 {
            // Full classes are measured rarely: it reads the whole cache.
            let all = try await store.eviction.entryBytes(types: Array(ResourceTypes.all))
            state.withLock {
                $0.fullBytes = max(0, all - resident)
                $0.measuredAt = now
            }
        }
        let full = state.withLock { $0.fullBytes }
        if let maxBytes, full + resident > maxBytes {
            var excess = full + resident - maxBytes
            for group in groups where excess > 0 {
                while excess > 0 {
                    let gone = try await store.eviction.evictLeastRecentlyRead(types: group.types, bytes: excess)
                    if gone.isEmpty { break }
                    evicted += gone
                    let after = try await store.eviction.entryBytes(types: residentTypes)
                    excess -= resident - after
                    resident = after
                }
            }
            if excess > 0 {
                logger.warning(
                    "the cache is over its byte budget and nothing more may be evicted (full classes are kept)",
                    metadata: ["over_bytes": "\(excess)"])
            }
        }
        state.withLock { $0.residentBytes = resident }
        for entry in evicted {
            audit.event(
                "evict", tenant: tenant, resource: "\(entry.type)/\(entry.id)", version: entry.version,
                detail: "reason=\(entry.reason.rawValue)")
        }
        if !evicted.isEmpty {
            logger.info("evicted cache entries", metadata: ["count": "\(evicted.count)"])
        }
    }
}
