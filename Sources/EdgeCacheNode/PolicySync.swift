import EdgeCacheCore
import EdgeCacheStore
import Logging
import NIOHTTP1
import ServiceLifecycle

/// Keeps an edge's policy registry in step with the origin's: asks `GET /replication/v1/policy`
/// at start and then every `interval`, stores a new version before applying it.
package final class PolicySync: Service {
    let store: EdgeStore
    let origin: OriginClient
    let holder: PolicyHolder
    let intervalMilliseconds: Int
    let logger: Logger

    package init(store: EdgeStore, origin: OriginClient, holder: PolicyHolder, intervalMilliseconds: Int, logger: Logger) {
        self.store = store
        self.origin = origin
        self.holder = holder
        self.intervalMilliseconds = intervalMilliseconds
        self.logger = logger
    }

    package func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let ok = await self.refresh()
                try await Task.sleep(for: .milliseconds(ok ? self.intervalMilliseconds : min(self.intervalMilliseconds, 2000)))
            }
        }
    }

    /// One exchange with the origin; true when the origin answered.
    @discardableResult
    package func refresh() async -> Bool {
        let current = holder.version
        guard
            let reply = try? await origin.send(
                method: .GET, path: "/replication/v1/policy", headers: [("If-None-Match", "\"\(current)\"")], maxBytes: 1 << 20)
        else { return false }
        if reply.status == 304 { return true }
        guard reply.status == 200, let registry = PolicyRegistry.decode(reply.body) else {
            logger.warning("the origin's policy registry was refused", metadata: ["status": "\(reply.status)"])
            return true
        }
        guard registry != holder.registry || holder.source != .origin && holder.source != .stored else { return true }
        do {
            try await store.policy.save(registry)
        } catch {
            logger.error("cannot store the policy registry; keeping the previous one", metadata: ["error": "\(error)"])
            return true
        }
        holder.replace(registry, source: .origin)
        logger.notice("policy registry applied", metadata: ["version": "\(registry.version)"])
        return true
    }
}
