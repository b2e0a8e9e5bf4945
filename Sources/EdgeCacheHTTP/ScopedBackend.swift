import EdgeCacheCore
import EdgeCacheStore

/// Enforces a bearer token's SMART scopes in front of any ``FHIRBackend``, so the origin and
/// the edge apply the same rules. Certificate callers (no ``ClientIdentity/grant``) pass through.
///
/// - A permission no scope grants: 403 naming the permission.
/// - Granted only by `patient/` scopes: the caller reaches the launch patient's compartment
///   only (``PatientCompartment``). Reads of anything outside it, including resources that do not
///   exist, answer 403, so a response never tells whether another patient's resource exists.
///   Searches and histories are filtered to the compartment (`total` is left out). A write must
///   refer to the token's patient, and to no other patient, at the type's R4 compartment paths
///   (``PatientCompartment/isWritable(type:id:object:by:)``); updates and deletes must find the
///   resource in the compartment.
package struct ScopedBackend: FHIRBackend {
    package let inner: any FHIRBackend

    package init(_ inner: any FHIRBackend) { self.inner = inner }

    /// The patient the caller is limited to for `permission` on `type` (nil: no limit).
    /// - Throws: 403 if no scope grants it, or a `patient/` scope does but the token names no patient.
    static func limit(_ caller: FHIRCaller, _ permission: SMARTPermissions, _ type: String) throws(FHIRError) -> String? {
        guard let grant = caller.identity.grant else { return nil }
        switch grant.access(permission, on: type) {
        case .any:
            return nil
        case .denied:
            throw .forbidden(
                "The token's scopes do not grant permission '\(permission)' on \(type) (e.g. user/\(type).\(permission) or patient/\(type).\(permission))"
            )
        case .patientCompartment:
            guard let patient = caller.identity.patientContext, !patient.isEmpty else {
                throw .forbidden("The token has patient/ scopes but no 'patient' claim")
            }
            return patient
        }
    }

    /// Refuses a write that no scope could allow, before its body is read: `c` for a create,
    /// `u` or `c` for an update, `d` for a delete. The full check runs in ``write(_:_:idempotencyKey:)``.
    package static func precheck(_ caller: FHIRCaller, _ interaction: FHIRInteraction, type: String) throws(FHIRError) {
        guard let grant = caller.identity.grant else { return }
        if interaction == .update, grant.access(.create, on: type) != .denied { return }
        if grant.access(interaction.permission, on: type) == .denied { _ = try limit(caller, interaction.permission, type) }
    }

    static func outside(_ type: String) -> FHIRError {
        .forbidden("The resource is not in the compartment of the token's patient (or does not exist)")
    }

    static func notWritable(_ type: String) -> FHIRError {
        let paths = (PatientCompartment.r4Paths[type] ?? []).map { $0.joined(separator: ".") }.joined(separator: ", ")
        return .forbidden(
            "A patient/ token may only write resources whose patient references (\(type): \(paths.isEmpty ? "none" : paths)) all name its patient"
        )
    }

    static func inCompartment(_ r: ResourceVersion, _ patient: String) -> Bool {
        !r.deleted && PatientCompartment.patientIDs(type: r.type, id: r.id, json: r.json).contains(patient)
    }

    /// Calls `body`; for a compartment-limited caller, maps not-found and gone to 403 and checks the answer.
    private func guardedRead(
        _ type: String, _ patient: String?, _ body: () async throws -> ResourceAnswer
    ) async throws
        -> ResourceAnswer
    {
        guard let patient else { return try await body() }
        let answer: ResourceAnswer
        do {
            answer = try await body()
        } catch let error as FHIRError where error.status == 404 || error.status == 410 {
            throw Self.outside(type)
        }
        guard Self.inCompartment(answer.resource, patient) else { throw Self.outside(type) }
        return answer
    }

    package func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        let patient = try Self.limit(caller, .read, type)
        return try await guardedRead(type, patient) { try await inner.read(caller, type: type, id: id) }
    }

    package func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        let patient = try Self.limit(caller, .read, type)
        return try await guardedRead(type, patient) { try await inner.vread(caller, type: type, id: id, version: version) }
    }

    package func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
        guard let patient = try Self.limit(caller, .read, type) else { return try await inner.history(caller, type: type, id: id) }
        var answer: ListAnswer
        do {
            answer = try await inner.history(caller, type: type, id: id)
        } catch let error as FHIRError where error.status == 404 || error.status == 410 {
            throw Self.outside(type)
        }
        answer.page.resources.removeAll { !Self.inCompartment($0, patient) }
        guard !answer.page.resources.isEmpty else { throw Self.outside(type) }
        answer.page.total = nil
        return answer
    }

    package func search(_ caller: FHIRCaller, type: String, query: SearchQuery) async throws -> ListAnswer {
        guard let patient = try Self.limit(caller, .search, type) else {
            return try await inner.search(caller, type: type, query: query)
        }
        return try await compartmentSearch(caller, type: type, query: query, patient: patient)
    }

    /// A search of `type` within `patient`'s compartment (`GET Patient/[id]/[type]`), with the
    /// caller's scopes as for any search; a caller limited to another patient finds nothing.
    package func search(_ caller: FHIRCaller, type: String, query: SearchQuery, compartment patient: String) async throws -> ListAnswer {
        if let limited = try Self.limit(caller, .search, type), limited != patient {
            return ListAnswer(page: SearchPage(resources: [], total: nil, hasMore: false))
        }
        return try await compartmentSearch(caller, type: type, query: query, patient: patient)
    }

    /// Most matches a compartment-limited search looks through before it gives up (too costly).
    static let maxCompartmentScan = 10 * SearchQuery.maxCount

    /// A search limited to `patient`'s compartment, counted and paged after the restriction, so
    /// that `next` links and `_offset` say nothing about resources outside it: the inner search
    /// is narrowed where the index allows (`patient=` for types whose compartment paths include
    /// `subject` or `patient`, `_id` for Patient), read in full pages from offset 0, filtered to
    /// the compartment, and only then cut to the caller's `_offset` and `_count`. No `total`.
    func compartmentSearch(_ caller: FHIRCaller, type: String, query: SearchQuery, patient: String) async throws -> ListAnswer {
        var narrowed = query
        narrowed.offset = 0
        narrowed.count = SearchQuery.maxCount
        let paths = PatientCompartment.r4Paths[type] ?? []
        if type == "Patient" {
            narrowed.ids = (query.ids ?? [patient]).filter { $0 == patient }
            narrowed.effectiveParameters.append(("_id", patient))
        } else if paths.contains(["subject"]) || paths.contains(["patient"]) {
            narrowed.termGroups.append(["patient|Patient/\(patient)"])
            // Forwarded to the origin as the type's own parameter (AdverseEvent has only `subject`).
            let code = SearchParameters.parameter("patient", of: type) != nil ? "patient" : "subject"
            narrowed.effectiveParameters.append((code, "Patient/\(patient)"))
        } else if paths.isEmpty {
            // Never in a patient's compartment.
            return ListAnswer(page: SearchPage(resources: [], total: nil, hasMore: false))
        }
        let wanted = query.offset + query.count + 1
        var members: [ResourceVersion] = []
        var cache: CacheFacts?
        var scanned = 0
        while true {
            if narrowed.ids?.isEmpty == true { break }
            let answer = try await inner.search(caller, type: type, query: narrowed)
            cache = cache ?? answer.cache
            members += answer.page.resources.filter { Self.inCompartment($0, patient) }
            scanned += answer.page.resources.count
            guard answer.page.hasMore, !answer.page.resources.isEmpty, members.count < wanted else { break }
            guard scanned < Self.maxCompartmentScan else {
                throw FHIRError(
                    status: 400, code: "too-costly",
                    "This search reads too many \(type) resources to be limited to the patient's compartment; narrow it (e.g. _lastUpdated)"
                )
            }
            narrowed.offset += answer.page.resources.count
        }
        let start = min(query.offset, members.count)
        let page = Array(members[start..<min(members.count, query.offset + query.count)])
        return ListAnswer(page: SearchPage(resources: page, total: nil, hasMore: members.count > query.offset + query.count), cache: cache)
    }

    package func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        guard let grant = caller.identity.grant else { return try await inner.write(caller, operation, idempotencyKey: idempotencyKey) }
        switch operation {
        case .create(let type, let resource):
            if let patient = try Self.limit(caller, .create, type),
                !PatientCompartment.isWritable(type: type, id: nil, object: resource, by: patient)
            {
                throw Self.notWritable(type)
            }
        case .update(let type, let id, let resource, _):
            // An update that creates is allowed with either `u` or `c`.
            let creates = grant.access(.update, on: type) == .denied && grant.access(.create, on: type) != .denied
            let patient = try Self.limit(caller, creates ? .create : .update, type)
            let existing = creates || patient != nil ? try await current(caller, type: type, id: id) : nil
            if creates, existing != nil {
                throw FHIRError.forbidden(
                    "The token's scopes do not grant permission 'u' on \(type) (e.g. user/\(type).u); 'c' only allows creating")
            }
            if let patient {
                if let existing, !Self.inCompartment(existing, patient) { throw Self.outside(type) }
                guard PatientCompartment.isWritable(type: type, id: id, object: resource, by: patient) else {
                    throw Self.notWritable(type)
                }
            }
        case .delete(let type, let id, _):
            if let patient = try Self.limit(caller, .delete, type) {
                guard let existing = try await current(caller, type: type, id: id), Self.inCompartment(existing, patient) else {
                    throw Self.outside(type)
                }
            }
        }
        return try await inner.write(caller, operation, idempotencyKey: idempotencyKey)
    }

    /// The current, not deleted version, or nil.
    private func current(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceVersion? {
        do {
            let answer = try await inner.read(caller, type: type, id: id)
            return answer.resource.deleted ? nil : answer.resource
        } catch let error as FHIRError where error.status == 404 || error.status == 410 {
            return nil
        }
    }
}
