/// One entry of the audit trail: who did what to which resource, when, and what came of it.
///
/// Records never hold resource content; they name resources by type and id (sealed at rest).
package struct AuditRecord: Sendable, Equatable {
    /// Epoch milliseconds.
    package var time: Int64
    /// `read`, `vread`, `search`, `history`, `create`, `update`, `delete`, `capabilities`, `denied`,
    /// `key-rotate`, `key-rotate-kek`, `key-shred` (``KeyAction``), …
    package var action: String
    /// HTTP status of the answer.
    package var outcome: Int
    /// Who: `role:tenant` from the certificate, `role:tenant:sub` for a bearer token, or
    /// `anonymous` when the caller could not be identified.
    package var actor: String
    package var tenant: String
    /// Purpose of use, when the request states one.
    package var purpose: String?
    /// The break-glass reason the request was served under, if any.
    package var breakGlass: String?
    /// `Type/id`, or `Type` for a search.
    package var resource: String?
    /// The version served or written.
    package var version: Int64?
    /// Where the answer came from (the `Cache-Status` value, or `origin`).
    package var source: String?
    package var policyClass: String?
    package var policyVersion: String
    package var node: String
    package var requestID: String

    package init(
        time: Int64, action: String, outcome: Int, actor: String, tenant: String, purpose: String? = nil,
        resource: String? = nil, version: Int64? = nil, source: String? = nil, policyClass: String? = nil,
        policyVersion: String, node: String, requestID: String, breakGlass: String? = nil
    ) {
        self.time = time
        self.action = action
        self.outcome = outcome
        self.actor = actor
        self.tenant = tenant
        self.purpose = purpose
        self.resource = resource
        self.version = version
        self.source = source
        self.policyClass = policyClass
        self.policyVersion = policyVersion
        self.node = node
        self.requestID = requestID
        self.breakGlass = breakGlass
    }

    /// The canonical JSON the chain hashes and the store seals. `breakGlass` is appended only when
    /// present, so records without it encode (and hash) exactly as before it existed.
    package func canonical() -> [UInt8] {
        func opt(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        var members = JSONObject([
            .init(key: "time", value: .number(String(time))), .init(key: "action", value: .string(action)),
            .init(key: "outcome", value: .number(String(outcome))), .init(key: "actor", value: .string(actor)),
            .init(key: "tenant", value: .string(tenant)), .init(key: "purpose", value: opt(purpose)),
            .init(key: "resource", value: opt(resource)),
            .init(key: "version", value: version.map { .number(String($0)) } ?? .null),
            .init(key: "source", value: opt(source)), .init(key: "class", value: opt(policyClass)),
            .init(key: "policy", value: .string(policyVersion)), .init(key: "node", value: .string(node)),
            .init(key: "request", value: .string(requestID)),
        ])
        if let breakGlass { members["breakGlass"] = .string(breakGlass) }
        return JSONValue.object(members).serialized()
    }

    /// Reads a canonical record back.
    package static func decode(_ bytes: [UInt8]) -> AuditRecord? {
        guard case .object(let o)? = try? JSONParser.parse(bytes) else { return nil }
        func int(_ key: String) -> Int64? { if case .number(let n)? = o[key] { return Int64(n) } else { return nil } }
        guard let time = int("time"), let action = o["action"]?.stringValue, let outcome = int("outcome"),
            let actor = o["actor"]?.stringValue, let tenant = o["tenant"]?.stringValue,
            let policy = o["policy"]?.stringValue, let node = o["node"]?.stringValue, let request = o["request"]?.stringValue
        else { return nil }
        return AuditRecord(
            time: time, action: action, outcome: Int(outcome), actor: actor, tenant: tenant, purpose: o["purpose"]?.stringValue,
            resource: o["resource"]?.stringValue, version: int("version"), source: o["source"]?.stringValue,
            policyClass: o["class"]?.stringValue, policyVersion: policy, node: node, requestID: request,
            breakGlass: o["breakGlass"]?.stringValue)
    }
}
