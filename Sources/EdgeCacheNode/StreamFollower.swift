import AsyncHTTPClient
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Follows the origin's change stream: the I/O shell around ``StreamCursor``.
///
/// Each batch of events is applied together with its checkpoint in one SQLite transaction;
/// a re-delivered event is a no-op. A 410 makes it re-bootstrap from a snapshot, staged aside
/// and swapped in atomically.
package final class StreamFollower: Service {
    let store: EdgeStore
    let origin: OriginClient
    let link: EdgeLink
    let logger: Logger
    let maxBatch = 500
    /// Resource bytes applied (or staged) per transaction: a batch is flushed when it reaches this.
    let maxBatchBytes: Int
    /// Heartbeat-only checkpoint moves are persisted at most this often (milliseconds).
    let checkpointInterval: Int64 = 1000

    let policies: PolicyHolder
    let isResident: @Sendable (String) -> Bool
    /// Told about every applied batch (consent rules, purges of blocked patients).
    let consent: ConsentGuard?

    package init(
        store: EdgeStore, origin: OriginClient, link: EdgeLink, policies: PolicyHolder = PolicyHolder(), consent: ConsentGuard? = nil,
        maxBatchBytes: Int = 4 << 20, logger: Logger
    ) {
        self.maxBatchBytes = maxBatchBytes
        self.consent = consent
        self.policies = policies
        self.isResident = { policies.policy(forType: $0).replication == .resident }
        self.store = store
        self.origin = origin
        self.link = link
        self.logger = logger
    }

    struct Gone: Error {}
    struct BadStatus: Error { let status: Int }
    /// The origin's log has another epoch than the one the cache holds data of.
    struct EpochChanged: Error {
        let known: LogEpoch
        let seen: LogEpoch
    }

    package func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch is CancellationError {
            // Graceful shutdown: every applied batch is already committed with its checkpoint.
        }
        link.disconnected()
    }

    private func loop() async throws {
        var cursor = StreamCursor(checkpoint: store.stream.counters.checkpoint)
        var action = cursor.start()
        do {
            while !Task.isCancelled {
                switch action {
                case .connect(let since):
                    do {
                        try await self.follow(since: since, cursor: &cursor)
                        self.link.disconnected()
                        if Task.isCancelled { return }
                        self.logger.warning("change stream interrupted", metadata: ["reason": "closed by the peer"])
                        action = cursor.failed(random: Double.random(in: 0...1))
                    } catch is Gone {
                        self.link.disconnected()
                        self.logger.notice("change log no longer reaches the checkpoint; bootstrapping from a snapshot")
                        action = cursor.gone()
                    } catch let change as EpochChanged {
                        // Restored or failed over: LSNs start again. The bootstrap counts it and
                        // queues the retained writes again (readSnapshot), whichever way it starts.
                        self.link.epochChanged()
                        self.logger.debug("origin log epoch differs from the cache's", metadata: ["epoch": "\(change.seen)"])
                        action = cursor.epochChanged()
                    } catch {
                        self.link.disconnected()
                        if Task.isCancelled { return }
                        self.logger.warning("change stream interrupted", metadata: ["reason": "\(Self.describe(error))"])
                        action = cursor.failed(random: Double.random(in: 0...1))
                    }
                case .wait(let ms):
                    try await Task.sleep(for: .milliseconds(ms))
                    action = cursor.retry()
                case .bootstrap:
                    do {
                        self.link.bootstrapStarted()
                        let lsn = try await self.bootstrap()
                        self.link.bootstrapEnded(lsn: lsn, wallNow: self.store.clock.nowMillis())
                        let summary = self.link.bootstrapState.last
                        self.logger.notice(
                            "bootstrapped from snapshot",
                            metadata: [
                                "lsn": "\(lsn)", "resources": "\(summary?.resources ?? 0)", "ms": "\(summary?.milliseconds ?? 0)",
                            ])
                        action = cursor.bootstrapped(at: lsn)
                    } catch {
                        self.link.bootstrapEnded(lsn: nil, wallNow: 0)
                        if Task.isCancelled { return }
                        self.logger.warning("bootstrap failed", metadata: ["reason": "\(Self.describe(error))"])
                        let wait = cursor.failed(random: Double.random(in: 0...1))
                        if case .wait(let ms) = wait { try await Task.sleep(for: .milliseconds(ms)) }
                        action = cursor.gone()
                    }
                }
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let bad = error as? BadStatus { return "HTTP \(bad.status)" }
        return String(describing: error).prefix(160).description
    }

    /// Streams from `since` until the stream ends or fails.
    private func follow(since: Int64, cursor: inout StreamCursor) async throws {
        try await origin.withStream(path: "/replication/v1/changes?since=\(since)") { response in
            try await self.read(response, cursor: &cursor)
        }
    }

    /// The epoch in a stream's `EdgeCache-Log-Epoch` header (nil from an origin older than epochs).
    static func epoch(of response: HTTPClientResponse) throws -> LogEpoch? {
        guard let text = response.headers.first(name: LogEpoch.headerName) else { return nil }
        guard let epoch = LogEpoch(hex: text) else { throw FrameDecodingError(message: "invalid \(LogEpoch.headerName) header") }
        return epoch
    }

    /// Throws ``EpochChanged`` if `epoch` is not the one the cache holds data of; adopts it if
    /// the cache knows none yet.
    func check(_ epoch: LogEpoch?) async throws {
        guard let epoch else { return }
        guard let known = store.stream.originEpoch else { return try await store.stream.adoptOriginEpoch(epoch) }
        if known != epoch { throw EpochChanged(known: known, seen: epoch) }
    }

    private func read(_ response: HTTPClientResponse, cursor: inout StreamCursor) async throws {
        if response.status.code == 410 { throw Gone() }
        guard response.status.code == 200 else { throw BadStatus(status: Int(response.status.code)) }
        // Before a single change is applied: LSNs of another epoch are not ours.
        try await check(try Self.epoch(of: response))
        cursor.connected()
        let inflater = try ZlibInflater()
        var splitter = LineSplitter(maxLineLength: 64 << 20)
        var decoder = FrameDecoder()
        var pending: [Change] = []
        var pendingBytes = 0
        var checkpoint = store.stream.counters.checkpoint
        var lastPersist = link.clock.nowMillis()
        let wallClock = store.clock
        func flush(upTo lsn: Int64, caughtUp: Bool = false) async throws {
            let counters = try await store.stream.apply(
                pending, checkpoint: lsn, isResident: isResident, caughtUpAt: caughtUp ? wallClock.nowMillis() : nil)
            if let consent, !pending.isEmpty { await consent.mainApplied(pending) }
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
            checkpoint = counters.checkpoint
            lastPersist = link.clock.nowMillis()
            cursor.applied(upTo: checkpoint)
            link.applied(upTo: checkpoint)
        }
        for try await chunk in response.body {
            let bytes = try inflater.decompress(Array(chunk.readableBytesView))
            for line in try splitter.feed(bytes) {
                guard let frame = try decoder.decode(line: line) else { continue }
                switch frame {
                case .change(let lsn, let resource):
                    pending.append(Change(lsn: lsn, resource: resource))
                    pendingBytes += resource.json.count
                    if pending.count >= maxBatch || pendingBytes >= maxBatchBytes { try await flush(upTo: lsn) }
                case .heartbeat(let head, let sent, _, let epoch):
                    try await check(epoch)
                    let due = link.clock.nowMillis() - lastPersist >= checkpointInterval
                    if !pending.isEmpty || due {
                        try await flush(upTo: max(sent, pending.last?.lsn ?? 0, checkpoint), caughtUp: sent >= head)
                    }
                    cursor.heartbeat()
                    link.applied(upTo: sent > checkpoint ? sent : checkpoint)
                    link.heartbeat(head: head)
                case .snapshotStart, .snapshotEnd:
                    throw FrameDecodingError(message: "snapshot frame in a change stream")
                }
            }
            if let last = pending.last, !decoder.expectsResourceLine { try await flush(upTo: last.lsn) }
        }
    }

    /// Downloads a snapshot into staging tables and swaps it in; returns its LSN.
    private func bootstrap() async throws -> Int64 {
        try await origin.withStream(path: "/replication/v1/snapshot") { response in try await self.readSnapshot(response) }
    }

    private func readSnapshot(_ response: HTTPClientResponse) async throws -> Int64 {
        guard response.status.code == 200 else { throw BadStatus(status: Int(response.status.code)) }
        var epoch = try Self.epoch(of: response)
        if let epoch, let known = store.stream.originEpoch, known != epoch {
            // A 410 after a restore, or a new epoch seen on the stream: before the new epoch is
            // recorded with the snapshot, count the change and queue the retained writes again
            // (one transaction; a crash before the swap repeats this, never skips it).
            link.epochChanged()
            let requeued = try await store.stream.recordEpochChange()
            logger.notice(
                "origin log epoch changed (origin restored or failed over); bootstrapping both lanes from a snapshot",
                metadata: ["previous": "\(known)", "epoch": "\(epoch)", "writes_requeued": "\(requeued)"])
        }
        try await store.stream.beginSnapshot()
        let inflater = try ZlibInflater()
        var splitter = LineSplitter(maxLineLength: 64 << 20)
        var decoder = FrameDecoder()
        var snapshotLSN: Int64?
        var staged: [ResourceVersion] = []
        var stagedBytes = 0
        var count: Int64 = 0
        var lastProgressLine = link.clock.nowMillis()
        for try await chunk in response.body {
            for line in try splitter.feed(try inflater.decompress(Array(chunk.readableBytesView))) {
                guard let frame = try decoder.decode(line: line) else { continue }
                switch frame {
                case .snapshotStart(let lsn, let total, let announced):
                    snapshotLSN = lsn
                    epoch = epoch ?? announced
                    link.bootstrapTotal(total)
                    logger.notice(
                        "snapshot bootstrap started", metadata: ["lsn": "\(lsn)", "resources": "\(total.map { "\($0)" } ?? "unknown")"])
                case .change(_, let resource):
                    guard snapshotLSN != nil else { throw FrameDecodingError(message: "snapshot without a start") }
                    count += 1
                    // Resident classes are fetched on demand, as the stream treats them.
                    if !isResident(resource.type) {
                        staged.append(resource)
                        stagedBytes += resource.json.count
                    }
                    if staged.count >= maxBatch || stagedBytes >= maxBatchBytes {
                        try await store.stream.stageSnapshot(staged)
                        staged.removeAll(keepingCapacity: true)
                        stagedBytes = 0
                    }
                    if count % 100 == 0, let progress = link.bootstrapReceived(count) {
                        // Plain lines (never a redrawn bar: logs are files), at most every 2 s.
                        let now = link.clock.nowMillis()
                        if now - lastProgressLine >= 2000 {
                            lastProgressLine = now
                            logger.notice("snapshot bootstrap: \(progress.describe(now: now))")
                        }
                    }
                case .snapshotEnd(let total):
                    link.bootstrapReceived(count)
                    guard let lsn = snapshotLSN, total == count else {
                        throw FrameDecodingError(message: "snapshot ended with \(total) resources, received \(count)")
                    }
                    try await store.stream.stageSnapshot(staged)
                    try await store.stream.finishSnapshot(lsn: lsn, epoch: epoch)
                    if let consent { await consent.reloaded() }
                    link.applied(upTo: lsn)
                    return lsn
                case .heartbeat:
                    continue
                }
            }
        }
        throw FrameDecodingError(message: "snapshot stream ended early")
    }
}
