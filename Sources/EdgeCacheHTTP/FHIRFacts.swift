import EdgeCacheCore
import HTTPTypes

/// What one FHIR request was and how it was answered. The node classifies the request once
/// (``init(method:segments:)``), the FHIR responder routes on that value and adds what it
/// learns while answering; headers are rendered from it once, and the audit trail and the
/// metrics read it as a value (they never parse paths, headers or status strings).
package struct FHIRFacts: Sendable, Equatable {
    /// The FHIR REST interaction (the audit trail's action).
    package enum Interaction: String, Sendable {
        case capabilities, search, create, read, update, delete, history, vread, other
    }

    package var interaction: Interaction
    /// The resource type the path names (nil for `metadata` and an empty path).
    package var type: String?
    /// The resource id: from the path, or for a create the id the write was given.
    package var id: String?
    /// The version the answer names (its `ETag`), if it names one.
    package var version: Int64?
    /// Where the answer came from (edge: cache hit, miss, revalidation, pending write).
    package var cache: CacheFacts?
    /// The write's place in the edge's outbox, when it is queued or held for review.
    package var outbox: OutboxFacts?
    /// What consent did to the answer.
    package var consent: ConsentFacts?
    /// The compartment a compartment search is limited to (`Patient/p1` for `GET Patient/p1/Observation`).
    package var compartment: String?

    package init(interaction: Interaction, type: String? = nil, id: String? = nil, version: Int64? = nil) {
        self.interaction = interaction
        self.type = type
        self.id = id
        self.version = version
    }

    /// Classifies a request by its method and the path segments after `/fhir`: the one place
    /// that knows which path shape is which interaction.
    package init(method: HTTPRequest.Method, segments: [Substring]) {
        self.init(interaction: .other)
        guard let first = segments.first else { return }
        if segments.count == 1, first == "metadata" {
            interaction = method == .get ? .capabilities : .other
            return
        }
        type = String(first)
        if segments.count >= 2, segments[1] != "_search" { id = String(segments[1]) }
        switch (segments.count, method) {
        case (1, .get): interaction = .search
        case (1, .post): interaction = .create
        case (2, .post) where segments[1] == "_search": interaction = .search
        case (2, _) where segments[1] == "_search": interaction = .other
        case (2, .get), (2, .head): interaction = .read
        case (2, .put): interaction = .update
        case (2, .delete): interaction = .delete
        case (3, .get) where segments[2] == "_history": interaction = .history
        case (3, .get) where first == "Patient" && ResourceTypes.all.contains(String(segments[2])):
            // A compartment search (R4 3.1.1.3.2): the type searched is the last segment.
            interaction = .search
            compartment = "Patient/\(segments[1])"
            type = String(segments[2])
            id = nil
        case (4, .get) where segments[2] == "_history": interaction = .vread
        default: interaction = .other
        }
    }

    /// `Type/id`, or the type alone (a search, or a create not carried out), or nil.
    package var resource: String? {
        guard let type else { return nil }
        if let compartment { return "\(compartment)/\(type)" }
        guard let id else { return type }
        return "\(type)/\(id)"
    }
}

/// A write held in the edge's outbox, rendered as `EdgeCache-Write-Status: STATE; seq=N`.
package struct OutboxFacts: Sendable, Equatable {
    package enum State: String, Sendable {
        /// Durable at the edge, not yet committed at the origin.
        case queued
        /// Held at the edge until a person decides.
        case review
    }

    package var state: State
    /// The write's position in the outbox.
    package var seq: Int64

    package init(_ state: State, seq: Int64) {
        self.state = state
        self.seq = seq
    }

    /// The `EdgeCache-Write-Status` value.
    package var headerValue: String { "\(state.rawValue); seq=\(seq)" }
}

/// What consent did to an answer, rendered as `EdgeCache-Consent`.
package enum ConsentFacts: Sendable, Equatable {
    /// Refused (403) because of `Consent/<consentID>`.
    case blocked(consentID: String)
    /// Read under a break-glass reason although `Consent/<consentID>` blocks it.
    case breakGlass(consentID: String)
    /// `entries` blocked resources left out of a Bundle.
    case filtered(entries: Int)
    /// `entries` blocked resources kept in a Bundle under a break-glass reason.
    case breakGlassEntries(Int)

    /// The `EdgeCache-Consent` value.
    package var headerValue: String {
        switch self {
        case .blocked(let id): "blocked; consent=Consent/\(id)"
        case .breakGlass(let id): "break-glass; consent=Consent/\(id)"
        case .filtered(let entries): "filtered; entries=\(entries)"
        case .breakGlassEntries(let entries): "break-glass; entries=\(entries)"
        }
    }

    package var isBlocked: Bool {
        if case .blocked = self { return true }
        return false
    }

    package var isBreakGlass: Bool {
        switch self {
        case .breakGlass, .breakGlassEntries: true
        case .blocked, .filtered: false
        }
    }
}
