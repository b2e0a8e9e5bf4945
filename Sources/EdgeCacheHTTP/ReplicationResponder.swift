import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Settings of the origin's change stream.
package struct StreamSettings: Sendable {
    /// Heartbeat interval (milliseconds); heartbeats carry the tenant's head LSN (the LSN of its
    /// newest change, never the origin's overall head) and the origin's time.
    package var heartbeatMilliseconds: Int
    /// Most changes read per query.
    package var batchLimit: Int
    /// How often an idle stream looks for new commits (milliseconds).
    package var pollMilliseconds: Int
    /// Most resource JSON bytes per change batch or snapshot page (a batch ends with the change
    /// that reaches it, so a resource larger than this still goes, alone).
    package var batchMaxBytes: Int
    /// Most change batches and snapshot pages read at once across all streams (first come,
    /// first served); the consent lane does not wait.
    package var maxConcurrentReads: Int

    package init(
        heartbeatMilliseconds: Int = 1000, batchLimit: Int = 500, pollMilliseconds: Int = 10, batchMaxBytes: Int = 4 << 20,
        maxConcurrentReads: Int = 2
    ) {
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.batchLimit = batchLimit
        self.pollMilliseconds = pollMilliseconds
        self.batchMaxBytes = batchMaxBytes
        self.maxConcurrentReads = maxConcurrentReads
    }
}

/// The origin's peer API: `GET /replication/v1/changes?since=LSN` (a long-lived, zlib-compressed
/// NDJSON stream with heartbeats) and `GET /replication/v1/snapshot`.
package struct ReplicationResponder: Sendable {
    package let store: any OriginStore
    package let settings: StreamSettings
    package let clock: any WallClock
    /// Applies a batch of replayed writes for a tenant (`POST /replication/v1/writes`).
    package let writeBatch: (@Sendable (String, [ReplayItem]) async throws -> [ReplayResult])?
    package let limits: RequestLimits
    /// Accepts an edge's audit chain head `(tenant, node, count, hash)`; false if it contradicts an
    /// earlier one. The node is the one the edge's certificate names (`urn:edgecache:node:`).
    package var acceptAnchor: (@Sendable (String, String, Int64, [UInt8]) async throws -> Bool)?
    /// The policy registry the origin publishes (`GET /replication/v1/policy`).
    package var policy: (@Sendable () -> PolicyRegistry)?
    /// Turns for the batch reads of all streams (``StreamSettings/maxConcurrentReads``).
    let gate: ReadGate

    package init(
        store: any OriginStore, settings: StreamSettings, clock: any WallClock,
        limits: RequestLimits = RequestLimits(),
        writeBatch: (@Sendable (String, [ReplayItem]) async throws -> [ReplayResult])? = nil
    ) {
        self.store = store
        self.settings = settings
        self.clock = clock
        self.limits = limits
        self.writeBatch = writeBatch
        self.gate = ReadGate(permits: settings.maxConcurrentReads)
    }

    static let streamHeaders = [
        ("Content-Type", "application/x-ndjson"), ("Content-Encoding", "deflate"), ("Cache-Control", "no-store"),
    ]

    /// Stream headers with the log's epoch: an edge checks it before it reads a single change.
    var streamHeaders: [(String, String)] { Self.streamHeaders + [(LogEpoch.headerName, store.logEpoch.hex)] }

    /// Serves `segments` (after `/replication/v1`) for an edge of `tenant` whose certificate
    /// names `node` (nil: none).
    package func respond(
        to request: Request, segments: [Substring], tenant: String, node callerNode: String?, logger: Logger
    ) async -> Response {
        let parameters = QueryString.parse(request.uri.query)
        if let requested = parameters.first(where: { $0.0 == "tenant" })?.1, requested != tenant {
            return FHIRHTTP.error(.forbidden("This certificate's tenant may not replicate tenant '\(requested.prefix(64))'"))
        }
        if request.method == .post, segments.count == 1, segments[0] == "audit-anchor", let acceptAnchor {
            var anchorLimits = limits
            anchorLimits.maxBodyBytes = 4096
            // Keyed by the node the certificate names: one edge can never anchor for another.
            guard let node = callerNode, !node.isEmpty else {
                return FHIRHTTP.error(
                    .forbidden("This certificate names no node (urn:edgecache:node:...), so it cannot anchor an audit trail"))
            }
            guard let body = try? await request.collectBody(limits: anchorLimits),
                let anchor = Contract.decode(AuditAnchor.self, from: body), anchor.count >= 0,
                let hash = anchor.headHash
            else { return FHIRHTTP.error(.invalid("An anchor is {\"node\":…,\"count\":N,\"head\":\"64 hex digits\"}")) }
            let count = anchor.count
            if let named = anchor.node, named != node {
                logger.warning("an edge sent an audit anchor for another node; refused", metadata: ["node": "\(node)"])
                return FHIRHTTP.error(.forbidden("An anchor may name only the node of the certificate that sends it ('\(node)')"))
            }
            do {
                guard try await acceptAnchor(tenant, node, count, hash) else {
                    logger.error("audit chain of an edge contradicts its earlier anchor", metadata: ["node": "\(node)"])
                    return FHIRHTTP.error(FHIRError(status: 409, code: "conflict", "This audit head contradicts one acknowledged before"))
                }
                return FHIRHTTP.response(
                    status: 200, headers: [("Content-Type", "application/json")],
                    body: Contract.encode(AnchorAcknowledgement(acknowledged: count)))
            } catch {
                return FHIRHTTP.error(FHIRError(status: 503, code: "transient", "The anchor could not be stored"))
            }
        }
        if request.method == .post, segments.count == 1, segments[0] == "writes", let writeBatch {
            // An edge names the log epoch its writes are based on; after a restore it must
            // bootstrap (and queue its retained writes again) before it replays anything.
            if let sent = request.header(LogEpoch.headerName), sent != store.logEpoch.hex {
                var refusal = FHIRHTTP.error(
                    FHIRError(
                        status: 409, code: "conflict",
                        "This origin's change log has another epoch than the edge's data (restored or failed over); bootstrap first"))
                refusal.headers[.logEpoch] = store.logEpoch.hex
                return refusal
            }
            do {
                var batchLimits = limits
                batchLimits.maxBodyBytes = max(limits.maxBodyBytes, 64 << 20)
                let body = try await request.collectBody(limits: batchLimits)
                let items = try ReplayBatchCodec.decode(body)
                let results = try await writeBatch(tenant, items)
                return FHIRHTTP.response(
                    status: 200, headers: [("Content-Type", "application/x-ndjson")], body: ReplayBatchCodec.encodeResults(results))
            } catch let error as FHIRError {
                return FHIRHTTP.error(error)
            } catch {
                logger.error("write batch failed", metadata: ["error": "\(String(describing: type(of: error)))"])
                return FHIRHTTP.error(FHIRError(status: 503, code: "transient", "The write batch could not be committed"))
            }
        }
        guard request.method == .get, segments.count == 1 else {
            return FHIRHTTP.error(.notFound("Unknown replication path"))
        }
        switch segments[0] {
        case "policy":
            let registry = policy?() ?? DefaultPolicy.registry
            let etag = "\"\(registry.version)\""
            if request.header("If-None-Match") == etag {
                return FHIRHTTP.response(status: 304, headers: [("ETag", etag)])
            }
            return FHIRHTTP.response(
                status: 200, headers: [("Content-Type", "application/json"), ("ETag", etag), ("Cache-Control", "no-cache")],
                body: registry.json())
        case "changes":
            guard let sinceText = parameters.first(where: { $0.0 == "since" })?.1, let since = Int64(sinceText), since >= 0
            else { return FHIRHTTP.error(.invalid("since must be a non-negative LSN")) }
            do {
                // Fails fast with 410 when the log no longer reaches back to `since`.
                _ = try await store.changes(tenant: tenant, after: since, limit: 1)
            } catch let gone as LogGoneError {
                return FHIRHTTP.error(
                    FHIRError(
                        status: 410, code: "not-found",
                        "The change log no longer reaches back to LSN \(gone.requested) (this tenant's log is kept after LSN \(gone.floor), its newest change is LSN \(gone.head)); bootstrap from /replication/v1/snapshot"
                    ))
            } catch {
                return FHIRHTTP.error(FHIRError(status: 500, code: "exception", "Cannot read the change log"))
            }
            let lane: ChangeLane? = parameters.first(where: { $0.0 == "lane" })?.1 == "consent" ? .consent : nil
            return Response(
                status: .ok, headers: Self.fields(streamHeaders),
                body: ResponseBody { writer in try await streamChanges(tenant: tenant, since: since, lane: lane, writer: &writer) })
        case "snapshot":
            return Response(
                status: .ok, headers: Self.fields(streamHeaders),
                body: ResponseBody { writer in try await streamSnapshot(tenant: tenant, writer: &writer) })
        default:
            return FHIRHTTP.error(.notFound("Unknown replication path"))
        }
    }

    static func fields(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs { if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) } }
        return fields
    }

    /// Streams changes after `since` (of one lane, if given). On the consent lane an idle
    /// stream looks for commits every millisecond: revocations must arrive first.
    ///
    /// Memory stays bounded whatever the history: a batch is bounded by count and by bytes, is
    /// read when this stream's turn at the ``ReadGate`` comes (the consent lane does not wait),
    /// and is written one change at a time. A stream waiting for its turn, or writing, still
    /// sends heartbeats, so the edge's idle timeout never trips while a batch makes progress.
    private func streamChanges(tenant: String, since: Int64, lane: ChangeLane?, writer: inout any ResponseBodyWriter) async throws {
        let deflater = try ZlibDeflater()
        let monotonic = MonotonicClock()
        let heartbeat = Int64(settings.heartbeatMilliseconds)
        var cursor = since
        var lastBeat: Int64 = 0
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            // The tenant's own head: another tenant's writes neither wake this loop nor show in
            // what it sends (heartbeat `head` and `sent` stay within the tenant's positions).
            var head = store.tenantHeadLSN(tenant)
            var wrote = false
            var turn = false
            if head > cursor { turn = lane == .consent ? true : await gate.acquire(timeout: .milliseconds(heartbeat)) }
            if turn {
                let changes: [Change]
                do {
                    changes = try await store.changes(
                        tenant: tenant, after: cursor, limit: settings.batchLimit, maxBytes: settings.batchMaxBytes, lane: lane)
                } catch {
                    if lane != .consent { gate.release() }
                    throw error
                }
                if lane != .consent { gate.release() }
                head = max(head, changes.last?.lsn ?? 0)
                var bytes = 0
                var out: [UInt8] = []
                for change in changes {
                    ReplicationFrame.change(lsn: change.lsn, change.resource).encode(into: &out)
                    bytes += change.resource.json.count
                    if out.count >= 64 << 10 {
                        try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                        out.removeAll(keepingCapacity: false)
                        wrote = true
                    }
                    cursor = change.lsn
                    if monotonic.nowMillis() - lastBeat >= heartbeat {
                        ReplicationFrame.heartbeat(head: head, sent: cursor, time: clock.nowMillis(), epoch: store.logEpoch).encode(
                            into: &out)
                        lastBeat = monotonic.nowMillis()
                    }
                }
                if !out.isEmpty {
                    try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                    wrote = true
                }
                // A short batch under the byte bound reached `head`.
                if changes.count < settings.batchLimit, bytes < settings.batchMaxBytes { cursor = max(cursor, head) }
            }
            let now = monotonic.nowMillis()
            if now - lastBeat >= heartbeat {
                var out: [UInt8] = []
                ReplicationFrame.heartbeat(head: head, sent: cursor, time: clock.nowMillis(), epoch: store.logEpoch).encode(into: &out)
                try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                lastBeat = now
                wrote = true
            }
            if !wrote, head <= cursor {
                try await Task.sleep(for: .milliseconds(lane == .consent ? 1 : settings.pollMilliseconds))
            }
        }
        try await writer.finish(nil)
    }

    /// Streams a snapshot in pages bounded by count and bytes, read in turn at the ``ReadGate``
    /// and written a resource at a time; heartbeats (which the edge skips) keep the stream
    /// alive while it waits.
    private func streamSnapshot(tenant: String, writer: inout any ResponseBodyWriter) async throws {
        let deflater = try ZlibDeflater()
        let monotonic = MonotonicClock()
        let heartbeat = Int64(settings.heartbeatMilliseconds)
        let snapshot = try await store.snapshot(tenant: tenant)
        var out: [UInt8] = []
        ReplicationFrame.snapshotStart(lsn: snapshot.lsn, total: snapshot.count, epoch: store.logEpoch).encode(into: &out)
        try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
        out.removeAll()
        var lastBeat = monotonic.nowMillis()
        var count: Int64 = 0
        while true {
            guard await gate.acquire(timeout: .milliseconds(heartbeat)) else {
                ReplicationFrame.heartbeat(
                    head: store.tenantHeadLSN(tenant), sent: snapshot.lsn, time: clock.nowMillis(), epoch: store.logEpoch
                ).encode(into: &out)
                try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                out.removeAll()
                lastBeat = monotonic.nowMillis()
                continue
            }
            let page: [ResourceVersion]
            do {
                page = try await snapshot.next(limit: 500, maxBytes: settings.batchMaxBytes)
            } catch {
                gate.release()
                throw error
            }
            gate.release()
            if page.isEmpty { break }
            for resource in page {
                ReplicationFrame.change(lsn: snapshot.lsn, resource).encode(into: &out)
                if out.count >= 64 << 10 {
                    try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                    out.removeAll(keepingCapacity: false)
                }
            }
            count += Int64(page.count)
            if monotonic.nowMillis() - lastBeat >= heartbeat {
                ReplicationFrame.heartbeat(
                    head: store.tenantHeadLSN(tenant), sent: snapshot.lsn, time: clock.nowMillis(), epoch: store.logEpoch
                ).encode(into: &out)
                lastBeat = monotonic.nowMillis()
            }
            if !out.isEmpty {
                try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
                out.removeAll(keepingCapacity: true)
            }
        }
        ReplicationFrame.snapshotEnd(count: count).encode(into: &out)
        try await writer.write(ByteBuffer(bytes: deflater.compress(out)))
        try await writer.finish(nil)
    }
}
