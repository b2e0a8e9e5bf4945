import EdgeCacheCore
import EdgeCacheHTTP
import EdgeCacheStore
import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// Collects audit records and writes them to the hash-chained ``AuditStore`` in batches (every
/// 100 ms), so reads never wait for an audit commit; on a clean shutdown it stops last and
/// writes what is left.
package final class AuditLog: Service, Sendable {
    /// Where an edge ships its chain head, and how often.
    package struct Anchoring: Sendable {
        let origin: OriginClient
        /// The node name of this edge's certificate (`urn:edgecache:node:`).
        let node: String?
        let intervalMilliseconds: Int64

        package init(origin: OriginClient, node: String?, intervalMilliseconds: Int64) {
            self.origin = origin
            self.node = node
            self.intervalMilliseconds = intervalMilliseconds
        }
    }

    package let store: AuditStore
    let node: String
    let logger: Logger
    private let buffer = Mutex<[AuditRecord]>([])
    let clock: any WallClock
    /// The registry whose class and version records name.
    let policies: PolicyHolder
    /// Nil at the origin.
    let anchoring: Anchoring?
    /// The node name anchors are keyed by; replaced when a reload brings a certificate with
    /// another name.
    let anchorNode: Mutex<String?>

    package init(
        store: AuditStore, node: String, clock: any WallClock, policies: PolicyHolder, anchoring: Anchoring? = nil, logger: Logger
    ) {
        self.store = store
        self.node = node
        self.clock = clock
        self.policies = policies
        self.anchoring = anchoring
        self.anchorNode = Mutex(anchoring?.node)
        self.logger = logger
    }

    package func record(_ record: AuditRecord) {
        buffer.withLock { $0.append(record) }
    }

    /// Records a reload of the node's certificates and keys (`tls-reload`, resource
    /// `Certificate/<node>`): outcome 200, or 422 when it was refused and nothing changed.
    package func recordReload(outcome: Int, detail: String, tenant: String = "-") {
        record(
            AuditRecord(
                time: clock.nowMillis(), action: "tls-reload", outcome: outcome, actor: "node", tenant: tenant,
                resource: "Certificate/\(node)", source: detail, policyVersion: "-", node: node,
                requestID: UUID().uuidString.lowercased()))
    }

    /// Turns an answered request into a record.
    package func observe(_ answered: AnsweredRequest) {
        var action = "other"
        var resource: String?
        var version: Int64?
        var source: String?
        switch answered.api {
        case "fhir":
            if let facts = answered.fhir {
                action = facts.interaction.rawValue
                resource = facts.resource
                version = facts.version
                source = facts.cache?.cacheStatus
                if let outbox = facts.outbox { source = "outbox " + outbox.headerValue }
                if let consent = facts.consent {
                    if consent.isBlocked {
                        action = "consent-blocked-" + action
                    } else if consent.isBreakGlass {
                        action = "break-glass-" + action
                    }
                    source = (source.map { $0 + "; " } ?? "") + consent.headerValue
                }
            }
        case "invalid":
            action = "refused-path"
        default:
            if let endpoint = answered.replicationEndpoint { action = "replication-" + endpoint }
        }
        if (answered.status == 401 || answered.status == 403) && !action.hasPrefix("consent-blocked") { action = "denied-" + action }
        let type = answered.fhir?.type
        let identity = answered.identity
        let registry = policies.registry
        record(
            AuditRecord(
                time: clock.nowMillis(), action: action, outcome: answered.status,
                actor: identity.map(Self.actor) ?? "anonymous",
                tenant: identity?.tenant ?? "none", purpose: identity?.purposeOfUse, resource: resource,
                version: version, source: source ?? (answered.status < 400 ? "origin" : nil),
                policyClass: resource == nil
                    ? nil : type.flatMap { ResourceTypes.isStorable($0) ? registry.dataClass(of: $0).rawValue : nil },
                policyVersion: registry.version, node: node, requestID: answered.requestID,
                breakGlass: answered.breakGlassReason))
    }

    /// Records something the node did on its own (eviction, purge, consent block, conflict
    /// decision, key operation): `resource` names what it touched, `detail` why.
    package func event(
        _ action: String, outcome: Int = 200, actor: String = "system", tenant: String, resource: String? = nil,
        version: Int64? = nil, detail: String? = nil, purpose: String? = nil, requestID: String = ""
    ) {
        let registry = policies.registry
        let type = resource?.split(separator: "/").first.map(String.init)
        record(
            AuditRecord(
                time: clock.nowMillis(), action: action, outcome: outcome, actor: actor, tenant: tenant, purpose: purpose,
                resource: resource, version: version, source: detail,
                policyClass: type.flatMap { ResourceTypes.isStorable($0) ? registry.dataClass(of: $0).rawValue : nil },
                policyVersion: registry.version, node: node, requestID: requestID))
    }

    /// `role:tenant` for a certificate; `role:tenant:sub` for a bearer token (its `sub`, when it has one).
    static func actor(_ identity: ClientIdentity) -> String {
        let base = "\(identity.role?.rawValue ?? "none"):\(identity.tenant ?? "none")"
        guard identity.grant != nil, let subject = identity.subject else { return base }
        return base + ":" + subject
    }

    func flush() async {
        let batch = buffer.withLock { buffer -> [AuditRecord] in
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
        guard !batch.isEmpty else { return }
        do {
            try await store.append(batch)
        } catch {
            // Never dropped silently: put them back for the next flush and say so.
            buffer.withLock { $0.insert(contentsOf: batch, at: 0) }
            logger.error("audit records could not be written; will retry", metadata: ["count": "\(batch.count)"])
        }
    }

    package func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .milliseconds(100))
                    await self.flush()
                }
            }
            if let anchoring {
                let origin = anchoring.origin
                // Anchoring runs beside the writer, so a slow origin never holds up audit writes.
                group.addTask {
                    var anchored: Int64 = 0
                    var next = self.clock.nowMillis() + anchoring.intervalMilliseconds
                    while !Task.isCancelled && !Task.isShuttingDownGracefully {
                        // Short naps, so a shutdown never waits for a whole interval.
                        try? await Task.sleep(for: .milliseconds(100))
                        guard self.clock.nowMillis() >= next else { continue }
                        next = self.clock.nowMillis() + anchoring.intervalMilliseconds
                        let head = self.store.chainHead
                        if head.count > anchored, await self.sendAnchor(origin, count: head.count, hash: head.hash) {
                            anchored = head.count
                        }
                    }
                }
            }
        }
        // Last flush without suspending: it must not be refused because shutdown ran out of time.
        let rest = buffer.withLock { buffer -> [AuditRecord] in
            defer { buffer.removeAll() }
            return buffer
        }
        do {
            try store.appendNow(rest)
        } catch {
            logger.error("audit records lost at shutdown", metadata: ["count": "\(rest.count)"])
        }
    }

    /// Ships the chain head to the origin; on its acknowledgement records it as the anchor.
    func sendAnchor(_ origin: OriginClient, count: Int64, hash: [UInt8]) async -> Bool {
        // The origin takes the node from the certificate; the body names the same one (an
        // origin older than this version needs it). Without a node name the origin answers 403.
        let body = Contract.encode(AuditAnchor(node: anchorNode.withLock { $0 }, count: count, head: Hex.encode(hash)))
        guard
            let reply = try? await origin.send(
                method: .POST, path: "/replication/v1/audit-anchor", body: body, contentType: "application/json")
        else { return false }
        guard reply.status == 200 else {
            if reply.status == 409 {
                logger.error("the origin refused this edge's audit head: it contradicts one acknowledged before")
            } else if reply.status == 403 {
                logger.error(
                    "the origin refused this edge's audit anchor: the certificate must name this node (urn:edgecache:node:)",
                    metadata: ["node": "\(anchorNode.withLock { $0 } ?? "none")"])
            }
            return false
        }
        do {
            try await store.recordAnchor(seq: count, hash: hash, at: clock.nowMillis())
            return true
        } catch {
            return false
        }
    }
}
