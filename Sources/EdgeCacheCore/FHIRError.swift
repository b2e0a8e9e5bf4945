/// A request that cannot be served, with the HTTP status and the FHIR issue to report.
///
/// Every error a client sees is rendered as an OperationOutcome (see ``OperationOutcome``).
package struct FHIRError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status code.
    package var status: Int
    /// FHIR IssueType code (`invalid`, `not-found`, `conflict`, ...).
    package var code: String
    /// Human-readable diagnostics. Never contains resource content.
    package var diagnostics: String
    /// Extra response headers (for example `Retry-After`).
    package var headers: [(String, String)]
    /// The resource version the error names (sent as its `ETag`, e.g. a 410 relayed from the
    /// origin), for the audit trail.
    package var version: Int64?

    package init(status: Int, code: String, _ diagnostics: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers
    }

    package var description: String { "\(status) \(code): \(diagnostics)" }

    package static func == (lhs: FHIRError, rhs: FHIRError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.diagnostics == rhs.diagnostics
    }

    package static func invalid(_ message: String) -> FHIRError { .init(status: 400, code: "invalid", message) }
    package static func notFound(_ message: String) -> FHIRError { .init(status: 404, code: "not-found", message) }
    package static func gone(_ message: String) -> FHIRError { .init(status: 410, code: "deleted", message) }
    package static func forbidden(_ message: String) -> FHIRError { .init(status: 403, code: "forbidden", message) }
    package static func conflict(_ message: String) -> FHIRError { .init(status: 409, code: "conflict", message) }
    package static func preconditionFailed(_ message: String) -> FHIRError {
        .init(status: 412, code: "conflict", message)
    }
    package static func unavailable(_ message: String, retryAfter: Int? = nil) -> FHIRError {
        .init(status: 503, code: "transient", message, headers: retryAfter.map { [("Retry-After", String($0))] } ?? [])
    }
}

/// Builds FHIR OperationOutcome resources.
package enum OperationOutcome {
    /// An OperationOutcome with one issue.
    package static func json(severity: String = "error", code: String, diagnostics: String) -> [UInt8] {
        let issue = JSONObject([
            .init(key: "severity", value: .string(severity)),
            .init(key: "code", value: .string(code)),
            .init(key: "diagnostics", value: .string(diagnostics)),
        ])
        let outcome = JSONObject([
            .init(key: "resourceType", value: .string("OperationOutcome")),
            .init(key: "issue", value: .array([.object(issue)])),
        ])
        return JSONValue.object(outcome).serialized()
    }

    /// The OperationOutcome for an error.
    package static func json(for error: FHIRError) -> [UInt8] {
        json(code: error.code, diagnostics: error.diagnostics)
    }
}
