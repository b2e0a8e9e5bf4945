/// Where a request goes, decided once from its path. The same value routes the request and
/// decides whether it is audited, so no path can be answered by `/fhir` or `/replication`
/// without being recorded.
///
/// Only canonical paths are routed: they start with `/` and have no empty segment (`//`, a
/// trailing `/`), no `.` or `..` segment and no `%` or `\` (EdgeCache paths never need
/// percent-encoding, and a decoded `%2F` would be a slash). Anything else is
/// ``nonCanonical``: answered 400 and audited, never normalised into another route.
///
/// ```swift
/// RequestTarget(path: "/fhir/Patient/x")   // .fhir(["Patient", "x"])
/// RequestTarget(path: "//fhir/Patient/x")  // .nonCanonical
/// ```
package enum RequestTarget: Equatable, Sendable {
    /// Under `/fhir`: the segments after it.
    case fhir([Substring])
    /// Under `/replication`: the segments after it (`v1`, …).
    case replication([Substring])
    /// Any other canonical path (the operator endpoints, or nothing).
    case other
    /// A path that is not canonical (refused with 400).
    case nonCanonical

    package init(path: String) {
        guard path.first == "/", !path.contains("%"), !path.contains("\\") else {
            self = .nonCanonical
            return
        }
        if path == "/" {
            self = .other
            return
        }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            self = .nonCanonical
            return
        }
        switch segments[0] {
        case "fhir": self = .fhir(Array(segments.dropFirst()))
        case "replication": self = .replication(Array(segments.dropFirst()))
        default: self = .other
        }
    }

    /// Whether answers to this target go to the audit trail (and request metrics).
    package var isAudited: Bool { self != .other }

    /// The API label of an audited target: `fhir`, `replication` or `invalid`.
    var api: String {
        switch self {
        case .fhir: "fhir"
        case .replication: "replication"
        case .other, .nonCanonical: "invalid"
        }
    }
}
