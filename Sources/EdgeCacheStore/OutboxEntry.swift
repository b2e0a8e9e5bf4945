import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import GRDB

/// The state of an outbox entry.
package enum OutboxState: String, Sendable, CaseIterable {
    /// Waiting to be replayed to the origin.
    case queued
    /// Set aside for a person: a conflict, a rejection, or too many failed attempts.
    case review
    /// Committed at the origin.
    case done
    /// Dropped by an operator (or by resolving a conflict in the origin's favour).
    case discarded

    /// The state as an SQL literal (`'queued'`): SQL never spells a state itself.
    var sql: String { "'\(rawValue)'" }
    /// `('queued', 'review')`: waiting for the origin or for a person.
    static let unfinished = "(\(OutboxState.queued.sql), \(OutboxState.review.sql))"
    /// `('done', 'discarded')`: nothing more will happen to it.
    static let finished = "(\(OutboxState.done.sql), \(OutboxState.discarded.sql))"
}

/// One queued write.
package struct OutboxEntry: Sendable {
    package var seq: Int64
    package var state: OutboxState
    package var attempts: Int
    package var nextAttemptAt: Int64
    /// The version shown to readers while the write is pending.
    package var projectedVersion: Int64
    package var createdAt: Int64
    package var lastError: String?
    package var reviewReason: String?
    /// The origin's version once committed.
    package var resultVersion: Int64?
    package var item: ReplayItem
}

/// A write to enqueue, as the edge's client sent it.
package struct EnqueueRequest: Sendable {
    package var item: ReplayItem
    package var fingerprint: [UInt8]

    package init(item: ReplayItem, fingerprint: [UInt8]) {
        self.item = item
        self.fingerprint = fingerprint
    }
}

/// An enqueue request with its keyed hashes computed and its payload sealed.
package struct PreparedEnqueue: Sendable {
    package let request: EnqueueRequest
    let keyHash: [UInt8]
    let rkey: [UInt8]
    let fingerprint: Data
    let blob: Data
}

/// What enqueueing did.
package enum EnqueueOutcome: Sendable {
    /// Durable in the outbox (new), or already there under the same key and request.
    case queued(OutboxEntry, duplicate: Bool)
    /// The key was used for a different request.
    case keyReused
    /// The outbox is full.
    case full
}

/// A conflict waiting for a person: the edge's write and the origin's version.
package struct ConflictRecord: Sendable {
    package var seq: Int64
    package var entry: OutboxEntry
    /// The origin's current version when the conflict was found (nil if it was deleted/unknown).
    package var originVersion: ResourceVersion?
    package var createdAt: Int64
    package var resolution: String?
}

/// What replaying an entry produced.
package enum ReplayOutcome: Sendable {
    /// Committed (or already committed under its key): the origin's version.
    case committed(ResourceVersion?)
    /// Retriable failure (5xx, 429): try again after `retryAt`, counting an attempt.
    case retry(error: String, retryAt: Int64)
    /// Refused for good, or too many attempts: set aside for review.
    case review(reason: String)
    /// The base version is no longer current and the class's rule is `reject`.
    case conflict(origin: ResourceVersion?)
    /// The base version is no longer current and the class allows last-writer-wins: send again
    /// without If-Match.
    case overwrite
}
