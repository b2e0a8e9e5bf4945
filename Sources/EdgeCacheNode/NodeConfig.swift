import EdgeCacheCore
import EdgeCacheHTTP
import Foundation
import Yams

/// A node's configuration, read once from YAML at the edge of the program.
///
/// Keys (see edge-config/*.yaml and docs/OPERATIONS.md):
/// - `role`: `origin` or `edge`
/// - `node_id`: this node's name
/// - `tenant`: (edge) the tenant it serves; must match its certificate
/// - `listen.api`: `host:port` of the FHIR listener; `listen.peer`: (origin) the edges' listener
/// - `public_base_url` (optional): the https:// base of the absolute URLs the API listener writes
///   (`Location`, Bundle links); default: the address the request came in on (never `Host`)
/// - `origin.url`: (edge) the origin's peer URL; `origin.request_timeout_ms`, `origin.connect_timeout_ms`
/// - `origin.node`, `origin.uri` (edge, optional): the `urn:edgecache:node:` name, and a URI subject
///   alternative name (e.g. a SPIFFE ID), the origin's certificate must carry besides role `origin`
/// - `tls.cert`, `tls.key`, `tls.ca`: PEM files
/// - `data_dir`: where the SQLite files live
/// - `keys.kek_file`: the key-encryption key
/// - `policy`: policy registry file (origin: the registry it publishes; edge: used until the
///   origin's arrives); without it the built-in defaults of DESIGN.md apply
/// - `replication.policy_refresh_ms` (edge, default 30,000): how often the origin's registry is asked for
/// - `limits.max_body_bytes`, `limits.max_header_bytes`, `limits.idle_timeout_s`, `limits.body_timeout_s`
/// - `replication.heartbeat_ms`, `replication.log_retention_changes`, `replication.batch_limit`,
///   `replication.heartbeat_timeout_ms`
/// - `replication.batch_max_bytes` (both, default 4 MiB): resource bytes per change batch or
///   snapshot page (origin: read and sent; edge: applied in one transaction)
/// - `replication.max_concurrent_reads` (origin, default 2): change batches and snapshot pages
///   read at once across all edges' streams, in turn (the consent lane does not wait)
/// - `limits.large_body_bytes` (default 1 MiB), `limits.max_large_bodies` (default 4),
///   `limits.max_large_bodies_per_client` (default 2): request bodies at least this large are
///   admitted this many at a time per node (then 503) and per client (then 429), with Retry-After
/// - `outbox.max_entries` (edge, default 1,000,000), `outbox.max_attempts` (default 10),
///   `outbox.batch_size` (default 500), `outbox.retention_days` (default 7: finished entries and
///   their idempotency keys are deleted this long after the write was accepted)
/// - `idempotency.retention_days` (origin, default 30): how long Idempotency-Keys are kept
/// - `audit.anchor_interval_ms` (edge, default 10,000): how often the audit chain head is sent
///   to the origin for acknowledgement
/// - `cache.max_bytes` (edge, default none): byte budget of the cache; resident classes are
///   evicted (lowest priority, least recently read first) to stay within it
/// - `cache.eviction_interval_ms` (edge, default 5,000): how often eviction runs
/// - `cache.hot_bytes` (edge, default 64 MiB; 0 turns it off): memory budget of the hot tier, the
///   plaintext of recently read entries (see `HotTier`)
/// - `log.level`: `trace` … `critical`; `log.format`: `text` (default) or `json`
/// - `auth.issuers[]` (`issuer`, `tenant`, `audience`, `keys`), `auth.client_certificates` (default
///   true), `auth.leeway_s` (default 60): bearer tokens on the API listener (see ``AuthConfig``)
///
/// Relative paths are resolved against the config file's folder.
package struct NodeConfig: Sendable {
    package enum Role: String, Sendable { case origin, edge }

    package struct Address: Sendable, Equatable {
        package var host: String
        package var port: Int
    }

    package var role: Role
    package var nodeID: String
    package var tenant: String?
    package var apiAddress: Address
    package var peerAddress: Address?
    package var originURL: String?
    package var originRequestTimeoutMilliseconds = 3000
    package var originConnectTimeoutMilliseconds = 1500
    /// The node name the origin's certificate must carry (`origin.node`); nil: any.
    package var originNode: String?
    /// A URI subject alternative name the origin's certificate must carry (`origin.uri`); nil: any.
    package var originURI: String?
    package var certFile: String
    package var keyFile: String
    package var caFile: String
    package var dataDir: String
    package var kekFile: String
    package var policyFile: String?
    package var maxBodyBytes = 4 * 1024 * 1024
    package var maxHeaderBytes = 16 * 1024
    package var idleTimeoutSeconds = 60
    package var bodyTimeoutSeconds = 30
    package var heartbeatMilliseconds = 1000
    package var heartbeatTimeoutMilliseconds = 3500
    package var logRetentionChanges = 1_000_000
    package var batchLimit = 500
    package var batchMaxBytes = 4 << 20
    package var maxConcurrentReads = 2
    package var largeBodyBytes = 1 << 20
    package var maxLargeBodies = 4
    package var maxLargeBodiesPerClient = 2
    package var logLevel = "info"
    /// `text` (one line per event) or `json` (one JSON object per line, see `JSONLogHandler`).
    package var logFormat = "text"
    package var outboxMaxEntries = 1_000_000
    package var outboxMaxAttempts = 10
    package var outboxBatchSize = 500
    package var outboxRetentionDays = 7
    package var idempotencyRetentionDays = 30
    package var auditAnchorIntervalMilliseconds = 10_000
    /// How often an edge asks the origin for its policy registry (milliseconds).
    package var policyRefreshMilliseconds = 30_000
    /// The edge cache's byte budget (sealed entry bytes); nil: no budget.
    package var cacheMaxBytes: Int64?
    package var hotBytes = 64 * 1024 * 1024
    /// How often the evictor runs (milliseconds).
    package var evictionIntervalMilliseconds = 5000
    /// The base of the absolute URLs the API listener writes (`Location`, Bundle links), e.g.
    /// `https://fhir.stmary.example`; nil: the address each request came in on. Never the `Host` header.
    package var publicBaseURL: String?
    /// Bearer tokens and client certificates on the API listener.
    package var auth = AuthConfig()
    /// The file this came from.
    package var sourceFile: String
    /// Lines of `tls.cert`, `tls.key` and `tls.ca` in it, for errors about those files.
    package var tlsLines: [String: Int] = [:]
    /// Line of `keys.kek_file` in it, for errors about the KEK.
    package var kekLine: Int?

    /// Reads and validates a config file.
    package static func load(path: String) throws(ConfigError) -> NodeConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, "cannot read the file")
        }
        return try parse(text, file: path)
    }

    /// Parses YAML text; `file` names it in errors and anchors relative paths.
    package static func parse(_ text: String, file: String) throws(ConfigError) -> NodeConfig {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { throw ConfigError(file: file, line: nil, "the file is empty") }
            node = composed
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), "not valid YAML: \(error)")
        } catch {
            throw ConfigError(file: file, line: nil, "not valid YAML")
        }
        let base = (file as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") ? p : ((base.isEmpty ? "." : base) as NSString).appendingPathComponent(p)
        }
        var root = try YAMLMap(file: file, node: node, path: "")
        let roleText = try root.requiredString("role", hint: "origin or edge")
        guard let role = Role(rawValue: roleText) else {
            throw ConfigError(file: file, line: node.mapping?["role"]?.mark?.line, "'role' must be origin or edge, got '\(roleText)'")
        }
        let nodeID = try root.requiredString("node_id", hint: "a name for this node, e.g. edge-stmary-1")
        let tenant = try root.string("tenant")
        var listen = try root.requiredMap("listen", hint: "e.g. listen: { api: \"127.0.0.1:8444\" }")
        let api = try address(&listen, "api", file: file)
        let peer = try listen.string("peer") != nil ? try address(&listen, "peer", file: file) : nil
        try listen.rejectUnknownKeys()
        var tls = try root.requiredMap("tls", hint: "tls: { cert: ..., key: ..., ca: ... }")
        let cert = resolve(try tls.requiredString("cert", hint: "the node's certificate (PEM)"))
        let key = resolve(try tls.requiredString("key", hint: "the node's private key (PEM)"))
        let ca = resolve(try tls.requiredString("ca", hint: "the CA that signs every EdgeCache certificate (PEM)"))
        try tls.rejectUnknownKeys()
        let tlsLines = ["cert", "key", "ca"].reduce(into: [String: Int]()) { lines, key in lines["tls.\(key)"] = tls.line(of: key) }
        let dataDir = resolve(try root.requiredString("data_dir", hint: "a folder for the node's SQLite files"))
        var keys = try root.requiredMap("keys", hint: "keys: { kek_file: ... } (create one with edgecache keys init)")
        let kek = resolve(try keys.requiredString("kek_file", hint: "create one with: edgecache keys init --kek-file PATH"))
        let kekLine = keys.line(of: "kek_file")
        try keys.rejectUnknownKeys()
        var config = NodeConfig(
            role: role, nodeID: nodeID, tenant: tenant, apiAddress: api, peerAddress: peer, originURL: nil,
            certFile: cert, keyFile: key, caFile: ca, dataDir: dataDir, kekFile: kek,
            policyFile: try root.string("policy").map(resolve), sourceFile: file)
        config.tlsLines = tlsLines
        if let base = try root.string("public_base_url") {
            guard let url = URL(string: base), url.scheme == "https", url.host?.isEmpty == false, url.query == nil,
                url.fragment == nil, url.user == nil
            else {
                throw ConfigError(
                    file: file, line: root.line(of: "public_base_url"),
                    "'public_base_url' must be an https:// URL without query or fragment, e.g. https://fhir.stmary.example")
            }
            var trimmed = base
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            config.publicBaseURL = trimmed
        }
        config.kekLine = kekLine
        if var origin = try root.map("origin") {
            config.originURL = try origin.requiredString("url", hint: "the origin's peer URL, e.g. https://origin.example:9443")
            if let url = config.originURL, URL(string: url)?.scheme != "https" {
                throw ConfigError(file: file, line: origin.line, "'origin.url' must be an https:// URL, got '\(url)'")
            }
            config.originRequestTimeoutMilliseconds =
                try origin.int("request_timeout_ms", range: 100...120_000) ?? config.originRequestTimeoutMilliseconds
            config.originConnectTimeoutMilliseconds =
                try origin.int("connect_timeout_ms", range: 100...60_000) ?? config.originConnectTimeoutMilliseconds
            config.originNode = try origin.string("node")
            config.originURI = try origin.string("uri")
            try origin.rejectUnknownKeys()
        }
        if var limits = try root.map("limits") {
            config.maxBodyBytes = try limits.int("max_body_bytes", range: 1024...(256 << 20)) ?? config.maxBodyBytes
            config.maxHeaderBytes = try limits.int("max_header_bytes", range: 1024...(64 << 10)) ?? config.maxHeaderBytes
            config.idleTimeoutSeconds = try limits.int("idle_timeout_s", range: 1...3600) ?? config.idleTimeoutSeconds
            config.bodyTimeoutSeconds = try limits.int("body_timeout_s", range: 1...3600) ?? config.bodyTimeoutSeconds
            config.largeBodyBytes = try limits.int("large_body_bytes", range: 1024...(256 << 20)) ?? config.largeBodyBytes
            config.maxLargeBodies = try limits.int("max_large_bodies", range: 1...1024) ?? config.maxLargeBodies
            config.maxLargeBodiesPerClient =
                try limits.int("max_large_bodies_per_client", range: 1...1024) ?? config.maxLargeBodiesPerClient
            try limits.rejectUnknownKeys()
        }
        if var replication = try root.map("replication") {
            config.heartbeatMilliseconds = try replication.int("heartbeat_ms", range: 50...10_000) ?? config.heartbeatMilliseconds
            config.heartbeatTimeoutMilliseconds =
                try replication.int("heartbeat_timeout_ms", range: 100...120_000) ?? max(3 * config.heartbeatMilliseconds + 500, 1000)
            config.logRetentionChanges =
                try replication.int("log_retention_changes", range: 10...1_000_000_000) ?? config.logRetentionChanges
            config.batchLimit = try replication.int("batch_limit", range: 1...10_000) ?? config.batchLimit
            config.batchMaxBytes = try replication.int("batch_max_bytes", range: (64 << 10)...(256 << 20)) ?? config.batchMaxBytes
            config.maxConcurrentReads = try replication.int("max_concurrent_reads", range: 1...64) ?? config.maxConcurrentReads
            config.policyRefreshMilliseconds =
                try replication.int("policy_refresh_ms", range: 100...86_400_000) ?? config.policyRefreshMilliseconds
            try replication.rejectUnknownKeys()
        }
        if var outbox = try root.map("outbox") {
            config.outboxMaxEntries = try outbox.int("max_entries", range: 1...100_000_000) ?? config.outboxMaxEntries
            config.outboxMaxAttempts = try outbox.int("max_attempts", range: 1...1000) ?? config.outboxMaxAttempts
            config.outboxBatchSize = try outbox.int("batch_size", range: 1...5000) ?? config.outboxBatchSize
            config.outboxRetentionDays = try outbox.int("retention_days", range: 1...3650) ?? config.outboxRetentionDays
            try outbox.rejectUnknownKeys()
        }
        if var cache = try root.map("cache") {
            if let bytes = try cache.int("max_bytes", range: 65_536...Int(Int64(1) << 50)) { config.cacheMaxBytes = Int64(bytes) }
            config.evictionIntervalMilliseconds =
                try cache.int("eviction_interval_ms", range: 50...3_600_000) ?? config.evictionIntervalMilliseconds
            config.hotBytes = try cache.int("hot_bytes", range: 0...(1 << 40)) ?? config.hotBytes
            try cache.rejectUnknownKeys()
        }
        if var idempotency = try root.map("idempotency") {
            config.idempotencyRetentionDays =
                try idempotency.int("retention_days", range: 1...3650) ?? config.idempotencyRetentionDays
            try idempotency.rejectUnknownKeys()
        }
        if var audit = try root.map("audit") {
            config.auditAnchorIntervalMilliseconds =
                try audit.int("anchor_interval_ms", range: 100...3_600_000) ?? config.auditAnchorIntervalMilliseconds
            try audit.rejectUnknownKeys()
        }
        if var auth = try root.map("auth") {
            config.auth = try parseAuth(&auth, file: file, resolve: resolve)
            if role == .edge, let tenant, let other = config.auth.issuers.first(where: { $0.tenant != tenant }) {
                throw ConfigError(
                    file: file, line: other.line,
                    "issuer '\(other.issuer)' has tenant '\(other.tenant)', but this edge serves tenant '\(tenant)'")
            }
        }
        if var log = try root.map("log") {
            let level = try log.string("level") ?? "info"
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                throw ConfigError(
                    file: file, line: log.line, "'log.level' must be one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = level
            let format = try log.string("format") ?? "text"
            guard ["text", "json"].contains(format) else {
                throw ConfigError(file: file, line: log.line, "'log.format' must be text or json")
            }
            config.logFormat = format
            try log.rejectUnknownKeys()
        }
        try root.rejectUnknownKeys()
        switch role {
        case .origin:
            if config.tenant != nil || config.originURL != nil {
                throw ConfigError(
                    file: file, line: root.line,
                    "an origin serves every tenant and follows nobody: remove 'tenant' and 'origin' (they are edge keys)")
            }
            guard config.peerAddress != nil else {
                throw ConfigError(file: file, line: listen.line, "an origin needs 'listen.peer' (the edges' mTLS listener)")
            }
        case .edge:
            if config.peerAddress != nil {
                throw ConfigError(file: file, line: listen.line, "'listen.peer' is an origin key; an edge listens on 'listen.api' only")
            }
            guard let tenant = config.tenant, !tenant.isEmpty else {
                throw ConfigError(file: file, line: root.line, "an edge needs 'tenant' (the tenant named in its certificate)")
            }
            guard TenantName.isValid(tenant) else {
                throw ConfigError(
                    file: file, line: root.line, "'tenant' must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
            }
            guard config.originURL != nil else {
                throw ConfigError(file: file, line: root.line, "an edge needs 'origin: { url: https://... }'")
            }
        }
        return config
    }

    private static func address(_ map: inout YAMLMap, _ key: String, file: String) throws(ConfigError) -> Address {
        let text = try map.requiredString(key, hint: "host:port")
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { throw ConfigError(file: file, line: map.line, "'listen.\(key)' must be host:port, got '\(text)'") }
        return Address(host: String(text[..<colon]), port: port)
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _): return mark.line
        default: return nil
        }
    }
}

extension NodeConfig {
    /// Checks that the files the config names exist and are usable.
    /// Reads and checks the `tls` files (``TLSMaterial/load(certFile:keyFile:caFile:now:)``); an
    /// error names the config line of the file at fault.
    package func loadTLSMaterial(
        use: TLSMaterial.Use = .node, now: Int64 = Int64(Date().timeIntervalSince1970)
    ) throws(ConfigError) -> TLSMaterial {
        do {
            return try TLSMaterial.load(certFile: certFile, keyFile: keyFile, caFile: caFile, use: use, now: now)
        } catch {
            throw ConfigError(file: sourceFile, line: tlsLines[error.setting], error.description)
        }
    }

    package func checkFiles() throws(ConfigError) {
        for (key, path) in [("tls.cert", certFile), ("tls.key", keyFile), ("tls.ca", caFile)] {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw ConfigError(file: sourceFile, line: nil, "'\(key)' names \(path), which cannot be read")
            }
        }
        _ = try loadTLSMaterial()
        _ = try tokenIssuers()
        try openKEK()
        if let policyFile { _ = try PolicyFile.load(path: policyFile) }
    }
}
