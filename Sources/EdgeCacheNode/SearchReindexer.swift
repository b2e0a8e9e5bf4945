import EdgeCacheCore
import Logging
import ServiceLifecycle

/// Re-indexes a store's search terms once at start when they are of an older scheme
/// (``SearchTerms/version``), online and logging its progress, then waits for shutdown. Until
/// it is done, searches decide their clauses on every row of a type: slower, never incomplete.
package struct SearchReindexer: Service {
    let reindex: @Sendable (_ progress: @escaping @Sendable (Int, Int) -> Void) async throws -> Int?
    let logger: Logger

    package init(logger: Logger, reindex: @escaping @Sendable (_ progress: @escaping @Sendable (Int, Int) -> Void) async throws -> Int?) {
        self.reindex = reindex
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            do {
                let logger = self.logger
                let started = ContinuousClock.now
                let done = try await reindex { done, total in
                    if done % 10_000 < 250 || done == total {
                        logger.info("search re-index", metadata: ["done": "\(done)", "total": "\(total)"])
                    }
                }
                if let done {
                    logger.info(
                        "search re-index complete",
                        metadata: ["resources": "\(done)", "seconds": "\((ContinuousClock.now - started).components.seconds)"])
                }
            } catch is CancellationError {
                return
            } catch {
                logger.error("search re-index failed; searches keep reading every row of a type", metadata: ["error": "\(error)"])
            }
            // A service that returns ends the group: wait for shutdown.
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(3600)) } catch { return }
            }
        }
    }
}
