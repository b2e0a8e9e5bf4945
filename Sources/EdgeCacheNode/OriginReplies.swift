import EdgeCacheCore
import EdgeCacheHTTP
import NIOHTTP1

/// Reading the origin's FHIR answers back into the edge's terms.
enum OriginReplies {
    /// The resource in a 200/201 reply.
    static func resource(_ reply: OriginClient.Reply, type: String) throws(FHIRError) -> ResourceVersion {
        guard case .object(let object)? = try? JSONParser.parse(reply.body) else {
            throw FHIRError(status: 502, code: "exception", "The origin sent an unreadable resource")
        }
        return try resource(object, type: type, json: reply.body)
    }

    static func resource(_ object: JSONObject, type: String, json: [UInt8]? = nil) throws(FHIRError) -> ResourceVersion {
        guard object["resourceType"]?.stringValue == type, let id = object["id"]?.stringValue, ResourceID.isValid(id),
            let meta = object["meta"]?.objectValue, let versionText = meta["versionId"]?.stringValue,
            let version = Int64(versionText),
            let updated = meta["lastUpdated"]?.stringValue.flatMap(FHIRTime.parseRange)
        else { throw FHIRError(status: 502, code: "exception", "The origin sent a resource without id or meta") }
        return ResourceVersion(
            type: type, id: id, version: version, lastUpdated: updated.start, deleted: false,
            json: json ?? JSONValue.object(object).serialized())
    }

    /// The error in a 4xx/5xx reply, with the origin's status and diagnostics.
    static func error(_ reply: OriginClient.Reply) -> FHIRError {
        var code = "exception"
        var diagnostics = "The origin answered \(reply.status)"
        if case .object(let outcome)? = try? JSONParser.parse(reply.body),
            let issue = outcome["issue"]?.arrayValue?.first?.objectValue
        {
            code = issue["code"]?.stringValue ?? code
            diagnostics = issue["diagnostics"]?.stringValue ?? diagnostics
        }
        var headers: [(String, String)] = []
        let etag = reply.headers.first(name: "ETag")
        if let etag { headers.append(("ETag", etag)) }
        if let retry = reply.headers.first(name: "Retry-After") { headers.append(("Retry-After", retry)) }
        var error = FHIRError(status: reply.status, code: code, diagnostics, headers: headers)
        error.version = etag.flatMap(ETag.version(from:))
        return error
    }

    /// The entries of a searchset Bundle (resources of `type` only) and whether a next page exists.
    static func searchset(_ reply: OriginClient.Reply, type: String) throws(FHIRError) -> SearchPage {
        guard case .object(let bundle)? = try? JSONParser.parse(reply.body), bundle["resourceType"]?.stringValue == "Bundle"
        else { throw FHIRError(status: 502, code: "exception", "The origin sent an unreadable Bundle") }
        var resources: [ResourceVersion] = []
        for entry in bundle["entry"]?.arrayValue ?? [] {
            // Only matches: included resources and outcomes are the edge's own to add.
            let mode = entry.objectValue?["search"]?.objectValue?["mode"]?.stringValue ?? "match"
            guard mode == "match", let object = entry.objectValue?["resource"]?.objectValue else { continue }
            resources.append(try resource(object, type: type))
        }
        let hasMore = bundle["link"]?.arrayValue?.contains { $0.objectValue?["relation"]?.stringValue == "next" } ?? false
        let total = bundle["total"].flatMap { value -> Int? in if case .number(let n) = value { return Int(n) } else { return nil } }
        return SearchPage(resources: resources, total: total, hasMore: hasMore)
    }

    /// The versions in a history Bundle, newest first (deletions included).
    static func history(_ reply: OriginClient.Reply, type: String, id: String) throws(FHIRError) -> [ResourceVersion] {
        guard case .object(let bundle)? = try? JSONParser.parse(reply.body) else {
            throw FHIRError(status: 502, code: "exception", "The origin sent an unreadable Bundle")
        }
        var versions: [ResourceVersion] = []
        for entry in bundle["entry"]?.arrayValue ?? [] {
            guard let e = entry.objectValue else { continue }
            if let object = e["resource"]?.objectValue {
                versions.append(try resource(object, type: type))
            } else if let response = e["response"]?.objectValue, let etag = response["etag"]?.stringValue,
                let version = ETag.version(from: etag)
            {
                let updated = response["lastModified"]?.stringValue.flatMap(FHIRTime.parseRange)?.start ?? 0
                versions.append(ResourceVersion(type: type, id: id, version: version, lastUpdated: updated, deleted: true, json: []))
            }
        }
        return versions
    }
}
