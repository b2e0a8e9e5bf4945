/// One queued write as the edge replays it to the origin (`POST /replication/v1/writes`).
///
/// Creates are replayed as update-as-create with the id the edge assigned, so an id is stable
/// across systems and a replay can never create a second resource.
package struct ReplayItem: Sendable, Equatable {
    package enum Method: String, Sendable { case put = "PUT", delete = "DELETE" }

    package var key: String
    package var method: Method
    package var type: String
    package var id: String
    /// The version the write was based on (sent as If-Match); nil for creates and forced writes.
    package var ifMatch: Int64?
    /// The resource JSON (PUT only) as the client sent it, with the id set; the origin stamps
    /// `meta.versionId` and `meta.lastUpdated` itself.
    package var resource: [UInt8]

    package init(key: String, method: Method, type: String, id: String, ifMatch: Int64?, resource: [UInt8]) {
        self.key = key
        self.method = method
        self.type = type
        self.id = id
        self.ifMatch = ifMatch
        self.resource = resource
    }
}

/// The origin's answer to one replayed write.
package struct ReplayResult: Sendable, Equatable {
    package var key: String
    package var status: Int
    /// The committed version (with its JSON for a PUT); nil for errors and no-op deletes.
    package var version: ResourceVersion?
    package var code: String?
    package var diagnostics: String?

    package init(key: String, status: Int, version: ResourceVersion?, code: String? = nil, diagnostics: String? = nil) {
        self.key = key
        self.status = status
        self.version = version
        self.code = code
        self.diagnostics = diagnostics
    }
}

/// NDJSON encoding of replay batches: a header line per write, then (for PUT) its resource line.
package enum ReplayBatchCodec {
    static func line(_ members: [(String, JSONValue)]) -> [UInt8] {
        var out = JSONValue.object(JSONObject(members.map { .init(key: $0.0, value: $0.1) })).serialized()
        out.append(0x0A)
        return out
    }

    package static func encode(_ items: [ReplayItem]) -> [UInt8] {
        var out: [UInt8] = []
        for item in items {
            out += line([
                ("key", .string(item.key)), ("method", .string(item.method.rawValue)), ("type", .string(item.type)),
                ("id", .string(item.id)), ("ifMatch", item.ifMatch.map { .number(String($0)) } ?? .null),
            ])
            if item.method == .put {
                out += item.resource
                out.append(0x0A)
            }
        }
        return out
    }

    /// Decodes and validates a batch from the network.
    package static func decode(_ bytes: [UInt8], maxItems: Int = 10_000) throws(FHIRError) -> [ReplayItem] {
        var items: [ReplayItem] = []
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).makeIterator()
        while let header = lines.next() {
            guard items.count < maxItems else { throw .invalid("A write batch holds at most \(maxItems) writes") }
            guard case .object(let o)? = try? JSONParser.parse(Array(header), maxDepth: 2),
                let key = o["key"]?.stringValue, !key.isEmpty, key.utf8.count <= 255,
                let method = o["method"]?.stringValue.flatMap(ReplayItem.Method.init(rawValue:)),
                let type = o["type"]?.stringValue, ResourceTypes.isStorable(type),
                let id = o["id"]?.stringValue, ResourceID.isValid(id)
            else { throw .invalid("Invalid write header in batch") }
            var ifMatch: Int64?
            if case .number(let text)? = o["ifMatch"] {
                guard let v = Int64(text), v > 0 else { throw .invalid("Invalid ifMatch in batch") }
                ifMatch = v
            }
            var resource: [UInt8] = []
            if method == .put {
                guard let body = lines.next() else { throw .invalid("A PUT in a batch needs its resource line") }
                resource = Array(body)
            }
            items.append(ReplayItem(key: key, method: method, type: type, id: id, ifMatch: ifMatch, resource: resource))
        }
        return items
    }

    package static func encodeResults(_ results: [ReplayResult]) -> [UInt8] {
        var out: [UInt8] = []
        for r in results {
            var members: [(String, JSONValue)] = [("key", .string(r.key)), ("status", .number(String(r.status)))]
            if let v = r.version {
                members += [
                    ("type", .string(v.type)), ("id", .string(v.id)), ("v", .number(String(v.version))),
                    ("ts", .number(String(v.lastUpdated))), ("del", .bool(v.deleted)),
                ]
            }
            if let code = r.code { members.append(("code", .string(code))) }
            if let diagnostics = r.diagnostics { members.append(("diagnostics", .string(diagnostics))) }
            out += line(members)
            if let v = r.version, !v.deleted {
                out += v.json
                out.append(0x0A)
            }
        }
        return out
    }

    package static func decodeResults(_ bytes: [UInt8]) throws(FrameDecodingError) -> [ReplayResult] {
        var results: [ReplayResult] = []
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).makeIterator()
        while let header = lines.next() {
            guard case .object(let o)? = try? JSONParser.parse(Array(header), maxDepth: 2),
                let key = o["key"]?.stringValue, case .number(let statusText)? = o["status"], let status = Int(statusText)
            else { throw FrameDecodingError(message: "invalid write result") }
            var version: ResourceVersion?
            if let type = o["type"]?.stringValue, let id = o["id"]?.stringValue, case .number(let v)? = o["v"],
                case .number(let ts)? = o["ts"], case .bool(let deleted)? = o["del"], let vn = Int64(v), let tsn = Int64(ts)
            {
                var json: [UInt8] = []
                if !deleted {
                    guard let body = lines.next() else { throw FrameDecodingError(message: "write result without its resource") }
                    json = Array(body)
                }
                version = ResourceVersion(type: type, id: id, version: vn, lastUpdated: tsn, deleted: deleted, json: json)
            }
            results.append(
                ReplayResult(
                    key: key, status: status, version: version, code: o["code"]?.stringValue,
                    diagnostics: o["diagnostics"]?.stringValue))
        }
        return results
    }
}
