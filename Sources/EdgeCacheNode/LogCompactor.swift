import EdgeCacheStore
import Logging
import ServiceLifecycle

/// Trims the origin's change log to its configured retention, periodically. Edges whose
/// checkpoint falls below the floor get 410 and re-bootstrap from a snapshot.
public struct LogCompactor: Service {
    let store: any OriginStore
    let keep: Int
    let interval: Duration
    let logger: Logger

    public init(store: any OriginStore, keep: Int, interval: Duration = .seconds(2), logger: Logger) {
        self.store = store
        self.keep = keep
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Ends quietly on shutdown: a thrown CancellationError would cancel the listeners
                // instead of letting them drain.
                do { try await Task.sleep(for: interval) } catch { return }
                do {
                    _ = try await store.compactLog(keep: keep)
                } catch {
                    logger.error("change log compaction failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
