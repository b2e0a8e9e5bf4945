import EdgeCacheCore
import EdgeCacheStore
import Logging
import ServiceLifecycle

/// Trims the origin's change log to its configured retention, periodically. Edges whose
/// checkpoint falls below the floor get 410 and re-bootstrap from a snapshot.
package struct LogCompactor: Service {
    let store: any OriginStore
    let keep: Int
    let interval: Duration
    let idempotencyRetentionMilliseconds: Int64
    let clock: any WallClock
    let logger: Logger

    package init(
        store: any OriginStore, keep: Int, idempotencyRetentionDays: Int, interval: Duration = .seconds(2), clock: any WallClock,
        logger: Logger
    ) {
        self.clock = clock
        self.store = store
        self.keep = keep
        self.interval = interval
        self.idempotencyRetentionMilliseconds = Int64(idempotencyRetentionDays) * 86_400_000
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Ends quietly on shutdown: a thrown CancellationError would cancel the listeners
                // instead of letting them drain.
                do { try await Task.sleep(for: interval) } catch { return }
                do {
                    _ = try await store.compactLog(keep: keep)
                    _ = try await store.expireIdempotencyKeys(before: clock.nowMillis() - idempotencyRetentionMilliseconds)
                } catch {
                    logger.error("change log compaction failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
