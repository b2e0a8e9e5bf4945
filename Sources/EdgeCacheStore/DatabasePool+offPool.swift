import Dispatch
import GRDB

/// A value handed across threads once, unchanged (rows fetched on a GRDB queue).
struct HandOver<T>: @unchecked Sendable {
    let value: T
}

extension DatabaseReader {
    /// A read whose result is not `Sendable` (rows), run on a Dispatch thread.
    ///
    /// GRDB's async reads keep their reader until their task resumes on the cooperative thread
    /// pool; a synchronous read made on that pool (what `await pool.read` silently becomes when
    /// the result is not Sendable) can therefore take the last cooperative thread while every
    /// reader waits for one: the process deadlocks. The failover drills found this.
    func readRows<T>(_ block: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HandOver<T>, any Error>) in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: HandOver(value: try self.read(block)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }.value
    }

}

extension DatabaseWriter {
    /// A write whose result is not `Sendable`, run on a Dispatch thread (see ``DatabaseReader/readRows(_:)``).
    func writeRows<T>(_ block: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HandOver<T>, any Error>) in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: HandOver(value: try self.write(block)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }.value
    }
}
