import AsyncHTTPClient
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Follows the stream's consent lane (`/replication/v1/changes?lane=consent`) beside the main
/// stream, so a consent change takes effect at the edge before the ordinary changes queued
/// ahead of it. Each batch is stored with the lane's own checkpoint in one transaction; the main
/// stream later delivers the same versions as no-ops.
package final class ConsentFollower: Service {
    let store: EdgeStore
    let origin: OriginClient
    let consent: ConsentGuard
    let logger: Logger

    package init(store: EdgeStore, origin: OriginClient, consent: ConsentGuard, logger: Logger) {
        self.store = store
        self.origin = origin
        self.consent = consent
        self.logger = logger
    }

    package func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var delay = 100
            while !Task.isCancelled {
                // The main stream may be ahead (e.g. after a bootstrap): it already carried those consents.
                let since = max((try? await self.store.consent.checkpoint()) ?? 0, self.store.stream.counters.checkpoint)
                do {
                    try await self.follow(since: since)
                    delay = 100
                } catch is StreamFollower.Gone {
                    // The log does not reach the lane's checkpoint (compacted, or above the head of a
                    // restored origin, or a damaged value): go back to the main stream's checkpoint,
                    // even if lower. If that is gone too, the main stream bootstraps and resets the lane.
                    let main = self.store.stream.counters.checkpoint
                    self.logger.notice(
                        "consent lane: change log does not reach its checkpoint; following from the main stream's",
                        metadata: ["lsn": "\(main)"])
                    try? await self.store.consent.reset(to: main)
                } catch is StreamFollower.EpochChanged {
                    // The main stream sees the same epoch and bootstraps both lanes; wait for it.
                    self.logger.debug("consent lane: origin log epoch changed; waiting for the main stream's bootstrap")
                } catch {
                    if Task.isCancelled { return }
                    self.logger.debug("consent lane interrupted", metadata: ["reason": "\(StreamFollower.describe(error))"])
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: delay / 2...delay)))
                delay = min(delay * 2, 2000)
            }
        }
    }

    private func follow(since: Int64) async throws {
        try await origin.withStream(path: "/replication/v1/changes?since=\(since)&lane=consent") { response in
            try await self.read(response, since: since)
        }
    }

    private func read(_ response: HTTPClientResponse, since: Int64) async throws {
        if response.status.code == 410 { throw StreamFollower.Gone() }
        guard response.status.code == 200 else { throw StreamFollower.BadStatus(status: Int(response.status.code)) }
        // Consents of another epoch's log never reach this cache (an unknown epoch is left to the main stream).
        if let epoch = try StreamFollower.epoch(of: response), let known = store.stream.originEpoch, known != epoch {
            throw StreamFollower.EpochChanged(known: known, seen: epoch)
        }
        let inflater = try ZlibInflater()
        var splitter = LineSplitter(maxLineLength: 64 << 20)
        var decoder = FrameDecoder()
        var pending: [Change] = []
        var checkpoint = since
        for try await chunk in response.body {
            for line in try splitter.feed(try inflater.decompress(Array(chunk.readableBytesView))) {
                guard let frame = try decoder.decode(line: line) else { continue }
                switch frame {
                case .change(let lsn, let resource):
                    pending.append(Change(lsn: lsn, resource: resource))
                case .heartbeat(_, let sent, _, _):
                    if sent > checkpoint, pending.isEmpty {
                        try await store.consent.apply([], checkpoint: sent)
                        checkpoint = sent
                    }
                case .snapshotStart, .snapshotEnd:
                    throw FrameDecodingError(message: "snapshot frame in a change stream")
                }
            }
            if let last = pending.last, !decoder.expectsResourceLine {
                // The rule is in force before anything is written: a revocation never waits
                // behind the main stream's transactions.
                await consent.consentsApplied(pending, lane: true)
                try await store.consent.apply(pending, checkpoint: last.lsn)
                checkpoint = last.lsn
                pending.removeAll(keepingCapacity: true)
            }
        }
    }
}
