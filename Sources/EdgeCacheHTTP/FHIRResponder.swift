import EdgeCacheCore
import EdgeCacheStore
import HTTPTypes
import Hummingbird
import Logging

/// Maps FHIR REST interactions under `/fhir` to a ``FHIRBackend``: routing, validation,
/// conditional requests, `Prefer`, `_format`, Bundles, and OperationOutcome for every error.
package struct FHIRResponder: Sendable {
    package let backend: any FHIRBackend
    package let role: String
    package let limits: RequestLimits
    package let clock: any WallClock
    /// The consent rules enforced on what is returned (nil: none).
    package var consent: ConsentRegistry?
    /// Admits large write bodies a few at a time (nil: no cap).
    package var largeBodies: LargeBodyGate?
    /// The match lists of searches with more than one page (stable paging).
    package let snapshots = SearchSnapshots()

    /// `backend` is wrapped in a ``ScopedBackend``: bearer-token callers get only what their scopes allow.
    package init(backend: any FHIRBackend, role: String, limits: RequestLimits, clock: any WallClock) {
        self.backend = backend is ScopedBackend ? backend : ScopedBackend(backend)
        self.role = role
        self.limits = limits
        self.clock = clock
    }

    /// Serves one request. `segments` are the path segments after `/fhir`; `facts` is the
    /// request as the node classified it (``FHIRFacts/init(method:segments:)``), returned with
    /// what was learnt while answering.
    package func respond(
        to request: Request, segments: [Substring], facts classified: FHIRFacts, caller: FHIRCaller, logger: Logger
    ) async -> (Response, FHIRFacts) {
        var facts = classified
        do {
            var response = try await dispatch(request, segments: segments, caller: caller, facts: &facts)
            response.headers[.requestID] = caller.requestID
            return (response, facts)
        } catch let error as FHIRError {
            if facts.version == nil { facts.version = error.version }
            return (FHIRHTTP.error(error, requestID: caller.requestID), facts)
        } catch is TenantShreddedError {
            return (
                FHIRHTTP.error(
                    FHIRError(status: 410, code: "deleted", "This tenant's data keys were destroyed; its data is gone"),
                    requestID: caller.requestID), facts
            )
        } catch {
            logger.error("request failed", metadata: ["error": "\(String(describing: type(of: error)))"])
            return (FHIRHTTP.error(FHIRError(status: 500, code: "exception", "Internal error"), requestID: caller.requestID), facts)
        }
    }

    private func dispatch(_ request: Request, segments: [Substring], caller: FHIRCaller, facts: inout FHIRFacts) async throws -> Response {
        let parameters = QueryString.parse(request.uri.query)
        if let format = parameters.first(where: { $0.0 == "_format" })?.1,
            !["json", "application/json", "application/fhir+json"].contains(format.split(separator: ";").first.map(String.init) ?? "")
        {
            throw FHIRError(status: 406, code: "not-supported", "Only JSON is supported (_format=json)")
        }
        if let accept = request.header("Accept"), accept.contains("xml"), !accept.contains("json"), !accept.contains("*/*") {
            throw FHIRError(status: 406, code: "not-supported", "Only application/fhir+json is supported")
        }
        if segments.isEmpty {
            throw FHIRError(status: 400, code: "not-supported", "Batch and transaction Bundles are not supported")
        }
        if facts.interaction == .capabilities {
            return FHIRHTTP.response(
                status: 200, headers: [("Content-Type", FHIRHTTP.fhirJSON)],
                body: CapabilityStatement.json(role: role, baseURL: caller.baseURL, date: clock.nowMillis()))
        }
        if segments.count == 1, segments[0] == "metadata" { throw methodNotAllowed() }
        guard let type = facts.type, ResourceTypes.isStorable(type) else {
            throw FHIRError(status: 404, code: "not-supported", "Unknown resource type '\(segments[0].prefix(64))'")
        }
        switch facts.interaction {
        case .search where facts.compartment != nil:
            let patient = try validID(segments[1])
            guard PatientCompartment.r4Paths[type]?.isEmpty == false || type == "Patient" else {
                throw FHIRError.invalid(
                    "\(type) is not in the Patient compartment (R4), so it cannot be searched as Patient/\(patient)/\(type)")
            }
            return try await search(
                type: type, parameters: parameters, lenient: Self.lenient(request), caller: caller, facts: &facts, compartment: patient)
        case .search where segments.count == 1:
            return try await search(type: type, parameters: parameters, lenient: Self.lenient(request), caller: caller, facts: &facts)
        case .search:
            let body = try await request.collectBody(limits: limits)
            let formParameters = QueryString.parse(String(decoding: body, as: UTF8.self))
            return try await search(
                type: type, parameters: parameters + formParameters, lenient: Self.lenient(request), caller: caller, facts: &facts)
        case .create:
            return try await write(request, type: type, id: nil, caller: caller, facts: &facts)
        case .read:
            return try await read(request, type: type, id: try validID(segments[1]), caller: caller, facts: &facts)
        case .update:
            return try await write(request, type: type, id: try validID(segments[1]), caller: caller, facts: &facts)
        case .delete:
            return try await delete(request, type: type, id: try validID(segments[1]), caller: caller, facts: &facts)
        case .history:
            let id = try validID(segments[1])
            let answer = try await backend.history(caller, type: type, id: id)
            let page = try await consentFilter(answer.page, caller: caller, facts: &facts)
            facts.cache = answer.cache
            return bundleResponse(FHIRBundle.history(page.resources, baseURL: caller.baseURL, now: clock.nowMillis()), facts: facts)
        case .vread:
            let id = try validID(segments[1])
            guard let version = Int64(segments[3]), version > 0 else { throw FHIRError.invalid("Invalid version id") }
            let answer = try await backend.vread(caller, type: type, id: id, version: version)
            try await consentCheck(answer.resource, caller: caller, facts: &facts)
            return resourceResponse(request, answer, status: 200, facts: &facts)
        case .capabilities, .other:
            throw try refusal(segments)
        }
    }

    /// The error for a path and method that name no interaction: 405 on a known path, else 404.
    private func refusal(_ segments: [Substring]) throws(FHIRError) -> FHIRError {
        switch segments.count {
        case 1: return methodNotAllowed()
        case 2 where segments[1] == "_search": return methodNotAllowed()
        case 2:
            _ = try validID(segments[1])
            return methodNotAllowed()
        case 3 where segments[2] == "_history", 4 where segments[2] == "_history": return methodNotAllowed()
        default: return FHIRError.notFound("Unknown FHIR path")
        }
    }

    private func methodNotAllowed() -> FHIRError {
        FHIRError(status: 405, code: "not-supported", "Method not allowed on this path")
    }

    private func validID(_ segment: Substring) throws(FHIRError) -> String {
        guard ResourceID.isValid(segment) else {
            throw FHIRError.invalid("'\(segment.prefix(80))' is not a valid FHIR id ([A-Za-z0-9-.]{1,64})")
        }
        guard ResourceID.isAddressable(segment) else {
            throw FHIRError.invalid("'\(segment.prefix(80))' is not accepted as an id: an id made only of dots is not addressable in a URL")
        }
        return String(segment)
    }

    // MARK: Read

    private func read(_ request: Request, type: String, id: String, caller: FHIRCaller, facts: inout FHIRFacts) async throws -> Response {
        let answer = try await backend.read(caller, type: type, id: id)
        try await consentCheck(answer.resource, caller: caller, facts: &facts)
        if answer.resource.deleted {
            facts.cache = answer.cache
            facts.outbox = answer.outbox
            facts.version = answer.resource.version
            var error = FHIRError.gone("\(type)/\(id) was deleted")
            error.headers = [("ETag", answer.resource.etag)] + Self.factHeaders(facts)
            throw error
        }
        return resourceResponse(request, answer, status: 200, facts: &facts)
    }

    /// The headers rendered from what the answer's facts say: `Cache-Status` and `Age`,
    /// `EdgeCache-Write-Status`, `EdgeCache-Consent`.
    static func factHeaders(_ facts: FHIRFacts) -> [(String, String)] {
        var headers: [(String, String)] = []
        if let cache = facts.cache {
            headers.append(("Cache-Status", cache.cacheStatus))
            if let age = cache.age { headers.append(("Age", String(age))) }
        }
        if let outbox = facts.outbox { headers.append(("EdgeCache-Write-Status", outbox.headerValue)) }
        if let consent = facts.consent { headers.append((Self.consentHeader, consent.headerValue)) }
        return headers
    }

    private func resourceHeaders(_ r: ResourceVersion, facts: FHIRFacts) -> [(String, String)] {
        [
            ("ETag", r.etag),
            ("Last-Modified", FHIRTime.httpDate(millis: r.lastUpdated)),
        ] + Self.factHeaders(facts)
    }

    private func resourceResponse(_ request: Request, _ answer: ResourceAnswer, status: Int, facts: inout FHIRFacts) -> Response {
        let r = answer.resource
        facts.cache = answer.cache
        facts.outbox = answer.outbox
        if let inm = request.header("If-None-Match") {
            let list = ETag.versions(fromList: inm)
            if list.any || list.versions.contains(r.version) {
                facts.version = r.version
                return FHIRHTTP.response(status: 304, headers: resourceHeaders(r, facts: facts))
            }
        }
        if r.deleted {
            return FHIRHTTP.error(FHIRError.gone("\(r.type)/\(r.id) version \(r.version) is a deletion"))
        }
        facts.version = r.version
        return FHIRHTTP.response(
            status: status,
            headers: [("Content-Type", FHIRHTTP.fhirJSON)] + resourceHeaders(r, facts: facts),
            body: request.method == .head ? nil : r.json)
    }

    // MARK: Search

    /// `Prefer: handling=lenient` (R4 3.1.1.5.4): unsupported search parameters are ignored and
    /// reported instead of refused.
    static func lenient(_ request: Request) -> Bool {
        guard let prefer = request.header("Prefer")?.lowercased() else { return false }
        return prefer.split(separator: ",").contains { $0.filter { !$0.isWhitespace } == "handling=lenient" }
    }

    /// A search of `type`; with `compartment`, within that patient's compartment
    /// (`Patient/[id]/[type]`, ``ScopedBackend/search(_:type:query:compartment:)``).
    private func search(
        type: String, parameters: [(String, String)], lenient: Bool, caller: FHIRCaller, facts: inout FHIRFacts,
        compartment: String? = nil
    ) async throws -> Response {
        if let token = parameters.first(where: { $0.0 == "_snapshot" })?.1 {
            return try await snapshotPage(token, type: type, parameters: parameters, caller: caller, facts: &facts)
        }
        let query = try await resolveLinks(SearchQuery.parse(parameters, type: type, lenient: lenient), type: type, caller: caller)
        let linkPath = compartment.map { "Patient/\($0)/\(type)" } ?? type
        let backend = self.backend
        let run: @Sendable (SearchQuery) async throws -> ListAnswer = { q in
            guard let compartment else { return try await backend.search(caller, type: type, query: q) }
            // `init` always wraps the backend in a ScopedBackend; never search a compartment unrestricted.
            guard let scoped = backend as? ScopedBackend else {
                throw FHIRError(status: 500, code: "exception", "Compartment searches need the scoped backend")
            }
            return try await scoped.search(caller, type: type, query: q, compartment: compartment)
        }
        var answer = try await run(query)
        // More than one page: the matches as they are now are kept, so the links page through them.
        // An edge asking the origin keeps its own (it pages by id through its own snapshot).
        var snapshot: String?
        if answer.page.hasMore, query.count > 0, caller.identity.role != .edge,
            (answer.page.matchIDs?.count ?? 0) <= SearchSnapshots.maxMatches
        {
            var ids = answer.page.matchIDs
            if ids == nil {
                // The first page is answered either way: a snapshot that cannot be made (too many
                // matches to read through a compartment, an origin gone meanwhile) is only left out.
                ids = try? await allMatches(query, total: answer.page.total, run)
            }
            if let ids {
                snapshot = snapshots.add(
                    ids, query: query, type: type, linkPath: linkPath, showsTotal: answer.page.total != nil, caller: caller,
                    now: clock.nowMillis())
            }
        }
        answer.page.included = try await included(answer.page, query: query, caller: caller)
        let page = try await consentFilter(answer.page, caller: caller, facts: &facts)
        facts.cache = answer.cache
        return bundleResponse(
            FHIRBundle.searchset(
                page, path: linkPath, query: query, baseURL: caller.baseURL, now: clock.nowMillis(), snapshot: snapshot,
                unstablePaging: answer.page.hasMore && query.count > 0 && snapshot == nil && caller.identity.role != .edge),
            facts: facts)
    }

    /// The ids of every match of `query` in its order, read a page of ``SearchQuery/maxCount`` at
    /// a time; nil when there are more than ``SearchSnapshots/maxMatches``.
    private func allMatches(
        _ query: SearchQuery, total: Int?, _ run: (SearchQuery) async throws -> ListAnswer
    ) async throws -> [String]? {
        if let total, total > SearchSnapshots.maxMatches { return nil }
        var q = query
        q.includes = []
        q.offset = 0
        q.count = SearchQuery.maxCount
        var ids: [String] = []
        while ids.count <= SearchSnapshots.maxMatches {
            let page = try await run(q).page
            ids += page.resources.map(\.id)
            guard page.hasMore, !page.resources.isEmpty else { return ids }
            q.offset = ids.count
        }
        return nil
    }

    /// A page of a kept search: its resources read by id, as they are now, through the backend
    /// (scopes, compartment, consent apply as to any read), in the order of the first answer.
    private func snapshotPage(
        _ token: String, type: String, parameters: [(String, String)], caller: FHIRCaller, facts: inout FHIRFacts
    ) async throws -> Response {
        var offset = 0
        var count: Int?
        for (name, value) in parameters {
            switch name {
            case "_snapshot": continue
            case "_offset":
                guard let n = Int(value), n >= 0 else { throw FHIRError.invalid("_offset must be a non-negative integer") }
                offset = n
            case "_count":
                guard let n = Int(value), n >= 0 else { throw FHIRError.invalid("_count must be a non-negative integer") }
                count = min(n, SearchQuery.maxCount)
            default:
                // The snapshot's own query decides; its parameters may be repeated in the link.
                continue
            }
        }
        guard let snapshot = snapshots.snapshot(token, type: type, caller: caller, now: clock.nowMillis()) else {
            throw FHIRError(
                status: 410, code: "not-found",
                "This search's pages are no longer held (they are kept \(SearchSnapshots.idleSeconds / 60) minutes after last use): run the search again"
            )
        }
        var query = snapshot.query
        query.offset = offset
        query.count = count ?? query.count
        let wanted = Array(snapshot.ids.dropFirst(offset).prefix(query.count))
        var found: [String: ResourceVersion] = [:]
        var cache: CacheFacts?
        for start in stride(from: 0, to: wanted.count, by: 100) {
            let chunk = Array(wanted[start..<min(wanted.count, start + 100)])
            var byID = SearchQuery()
            byID.ids = chunk.sorted()
            byID.effectiveParameters = [("_id", chunk.joined(separator: ","))]
            byID.count = chunk.count
            let answer = try await backend.search(caller, type: type, query: byID)
            for r in answer.page.resources { found[r.id] = r }
            cache = cache ?? answer.cache
        }
        var page = SearchPage(
            resources: wanted.compactMap { found[$0] }, total: snapshot.showsTotal ? snapshot.ids.count : nil,
            hasMore: offset + query.count < snapshot.ids.count)
        page.included = try await included(page, query: query, caller: caller)
        page = try await consentFilter(page, caller: caller, facts: &facts)
        facts.cache = cache
        return bundleResponse(
            FHIRBundle.searchset(
                page, path: snapshot.linkPath, query: query, baseURL: caller.baseURL, now: clock.nowMillis(), snapshot: token),
            facts: facts)
    }

    private func bundleResponse(_ body: [UInt8], facts: FHIRFacts) -> Response {
        FHIRHTTP.response(status: 200, headers: [("Content-Type", FHIRHTTP.fhirJSON)] + Self.factHeaders(facts), body: body)
    }

    // MARK: Writes

    private func ifMatch(_ request: Request) throws(FHIRError) -> Int64? {
        guard let value = request.header("If-Match") else { return nil }
        guard let version = ETag.version(from: value) else {
            throw FHIRError.invalid("If-Match must name a version, as W/\"3\" or 3")
        }
        return version
    }

    private func checkContentType(_ request: Request) throws(FHIRError) {
        guard let contentType = request.header("Content-Type")?.lowercased() else { return }
        let media = contentType.split(separator: ";").first.map { String($0).trimmingSpaces() } ?? ""
        guard ["application/fhir+json", "application/json", "application/json+fhir", "text/json"].contains(media) else {
            throw FHIRError(status: 415, code: "not-supported", "Content-Type must be application/fhir+json")
        }
    }

    private func write(_ request: Request, type: String, id: String?, caller: FHIRCaller, facts: inout FHIRFacts) async throws -> Response {
        try ScopedBackend.precheck(caller, id == nil ? .create : .update, type: type)
        try checkContentType(request)
        // Per client, except an edge (it relays many clients, and caps them itself).
        let slot = try largeBodies?.admit(
            length: request.header("Content-Length").flatMap { Int($0) },
            client: caller.identity.role == .edge ? nil : "\(caller.tenant)|\(caller.identity.subject ?? caller.identity.commonName ?? "")")
        defer { slot?.release() }
        let body = try await request.collectBody(limits: limits)
        let object = try FHIRResource.parse(body: body, type: type, urlID: id)
        let operation: WriteOperation =
            if let id { .update(type: type, id: id, resource: object, ifMatch: try ifMatch(request)) } else {
                .create(type: type, resource: object)
            }
        let answer = try await backend.write(caller, operation, idempotencyKey: request.header("Idempotency-Key"))
        return writeResponse(request, answer, caller: caller, facts: &facts)
    }

    private func delete(_ request: Request, type: String, id: String, caller: FHIRCaller, facts: inout FHIRFacts) async throws -> Response {
        try ScopedBackend.precheck(caller, .delete, type: type)
        let answer = try await backend.write(
            caller, .delete(type: type, id: id, ifMatch: try ifMatch(request)),
            idempotencyKey: request.header("Idempotency-Key"))
        facts.outbox = answer.outbox
        var headers = Self.writeHeaders(answer) + Self.factHeaders(facts)
        if let r = answer.resource {
            facts.version = r.version
            headers.append(("ETag", r.etag))
        }
        return FHIRHTTP.response(status: answer.status == 202 ? 202 : 204, headers: headers)
    }

    /// `Idempotency-Key` (the key a write was made under, at the edge) and
    /// `Idempotent-Replayed` (an answer stored for an earlier request, at the origin).
    static func writeHeaders(_ answer: WriteAnswer) -> [(String, String)] {
        var headers: [(String, String)] = []
        if let key = answer.idempotencyKey { headers.append(("Idempotency-Key", key)) }
        if answer.replayed { headers.append(("Idempotent-Replayed", "true")) }
        return headers
    }

    private func writeResponse(_ request: Request, _ answer: WriteAnswer, caller: FHIRCaller, facts: inout FHIRFacts) -> Response {
        facts.outbox = answer.outbox
        guard let r = answer.resource else {
            return FHIRHTTP.response(status: answer.status, headers: Self.writeHeaders(answer) + Self.factHeaders(facts))
        }
        facts.id = r.id
        facts.version = r.version
        var headers = Self.writeHeaders(answer) + resourceHeaders(r, facts: facts)
        headers.append(
            (
                "Location",
                answer.queued ? "\(caller.baseURL)/\(r.type)/\(r.id)" : "\(caller.baseURL)/\(r.type)/\(r.id)/_history/\(r.version)"
            ))
        let prefer = request.header("Prefer")?.lowercased() ?? ""
        if prefer.contains("return=minimal") {
            return FHIRHTTP.response(status: answer.status, headers: headers)
        }
        if prefer.contains("return=operationoutcome") {
            return FHIRHTTP.response(
                status: answer.status, headers: headers + [("Content-Type", FHIRHTTP.fhirJSON)],
                body: OperationOutcome.json(
                    severity: "information", code: "informational", diagnostics: "\(r.type)/\(r.id) version \(r.version) stored"))
        }
        return FHIRHTTP.response(status: answer.status, headers: headers + [("Content-Type", FHIRHTTP.fhirJSON)], body: r.json)
    }
}
