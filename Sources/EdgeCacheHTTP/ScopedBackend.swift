import EdgeCacheCore
import EdgeCacheStore

/// Enforces a bearer token's SMART scopes in front of any ``FHIRBackend``, so the origin and
/// the edge apply the same rules. Certificate callers (no ``ClientIdentity/grant``) pass through.
///
/// - A permission no scope grants: 403 naming the permission.
/// - Granted only by `patient/` scopes: the caller reaches the launch patient's compartment
///   only (``PatientCompartment``). Reads of anything outside it, including resources that do not
///   exist, answer 403, so a response never tells whether another patient's resource exists.
///   Searches and histories are filtered to the compartment (`total` is left out). Writes must
///   leave the resource in the compartment, and updates and deletes must find it there.
public struct ScopedBackend: FHIRBackend {
    public let inner: any FHIRBackend

    public init(_ inner: any FHIRBackend) { self.inner = inner }

    /// The patient the caller is limited to for `permission` on `type` (nil: no limit).
    /// - Throws: 403 if no scope grants it, or a `patient/` scope does but the token names no patient.
    static func limit(_ caller: FHIRCaller, _ permission: SMARTPermissions, _ type: String) throws(FHIRError) -> String? {
        guard let grant = caller.identity.grant else { return nil }
        switch grant.access(permission, on: type) {
        case .any:
            return nil
        case .denied:
            throw .forbidden(
                "The token's scopes do not grant permission '\(permission)' on \(type) (e.g. user/\(type).\(permission) or patient/\(type).\(permission))")
        case .patientCompartment:
            guard let patient = caller.identity.patientContext, !patient.isEmpty else {
                throw .forbidden("The token has patient/ scopes but no 'patient' claim")
            }
            return patient
        }
    }

    /// Refuses a write that no scope could allow, before its body is read: `c` for a create,
    /// `u` or `c` for an update, `d` for a delete. The full check runs in ``write(_:_:idempotencyKey:)``.
    public static func precheck(_ caller: FHIRCaller, _ interaction: FHIRInteraction, type: String) throws(FHIRError) {
        guard let grant = caller.identity.grant else { return }
        if interaction == .update, grant.access(.create, on: type) != .denied { return }
        if grant.access(interaction.permission, on: type) == .denied { _ = try limit(caller, interaction.permission, type) }
    }

    static func outside(_ type: String) -> FHIRError {
        .forbidden("The resource is not in the compartment of the token's patient (or does not exist)")
    }

    static func inCompartment(_ r: ResourceVersion, _ patient: String) -> Bool {
        !r.deleted && PatientCompartment.patientIDs(type: r.type, id: r.id, json: r.json).contains(patient)
    }

    /// Calls `body`; for a compartment-limited caller, maps not-found and gone to 403 and checks the answer.
    private func guardedRead(_ type: String, _ patient: String?, _ body: () async throws -> ResourceAnswer) async throws
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

    public func read(_ caller: FHIRCaller, type: String, id: String) async throws -> ResourceAnswer {
        let patient = try Self.limit(caller, .read, type)
        return try await guardedRead(type, patient) { try await inner.read(caller, type: type, id: id) }
    }

    public func vread(_ caller: FHIRCaller, type: String, id: String, version: Int64) async throws -> ResourceAnswer {
        let patient = try Self.limit(caller, .read, type)
        return try await guardedRead(type, patient) { try await inner.vread(caller, type: type, id: id, version: version) }
    }

    public func history(_ caller: FHIRCaller, type: String, id: String) async throws -> ListAnswer {
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

    public func search(_ caller: FHIRCaller, type: String, query: SearchQuery, rawQuery: String?) async throws -> ListAnswer {
        guard let patient = try Self.limit(caller, .search, type) else {
            return try await inner.search(caller, type: type, query: query, rawQuery: rawQuery)
        }
        var answer = try await inner.search(caller, type: type, query: query, rawQuery: rawQuery)
        answer.page.resources.removeAll { !Self.inCompartment($0, patient) }
        answer.page.total = nil
        return answer
    }

    public func write(_ caller: FHIRCaller, _ operation: WriteOperation, idempotencyKey: String?) async throws -> WriteAnswer {
        guard let grant = caller.identity.grant else { return try await inner.write(caller, operation, idempotencyKey: idempotencyKey) }
        switch operation {
        case .create(let type, let resource):
            if let patient = try Self.limit(caller, .create, type),
                !PatientCompartment.patientIDs(type: type, id: nil, object: resource).contains(patient)
            {
                throw FHIRError.forbidden("A patient/ token may only create resources in its patient's compartment")
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
                guard PatientCompartment.patientIDs(type: type, id: id, object: resource).contains(patient) else {
                    throw FHIRError.forbidden("A patient/ token may only write resources in its patient's compartment")
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
