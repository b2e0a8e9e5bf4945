/// SMART on FHIR permissions (v2 letters `c r u d s`).
package struct SMARTPermissions: OptionSet, Sendable, Hashable, CustomStringConvertible {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    package static let create = SMARTPermissions(rawValue: 1 << 0)
    package static let read = SMARTPermissions(rawValue: 1 << 1)
    package static let update = SMARTPermissions(rawValue: 1 << 2)
    package static let delete = SMARTPermissions(rawValue: 1 << 3)
    package static let search = SMARTPermissions(rawValue: 1 << 4)
    package static let all: SMARTPermissions = [.create, .read, .update, .delete, .search]

    /// In SMART v2 order: `c`, `r`, `u`, `d`, `s`.
    static let ordered: [(Character, SMARTPermissions)] = [
        ("c", .create), ("r", .read), ("u", .update), ("d", .delete), ("s", .search),
    ]

    /// The v2 letters, e.g. `rs`.
    package var description: String { String(Self.ordered.filter { contains($0.1) }.map(\.0)) }

    /// Parses v2 letters (a non-empty subsequence of `cruds`, in that order) or the v1 words
    /// `read` (→ `rs`), `write` (→ `cud`) and `*` (→ `cruds`).
    package init?<S: StringProtocol>(scopeSuffix text: S) {
        switch text {
        case "read": self = [.read, .search]
        case "write": self = [.create, .update, .delete]
        case "*": self = .all
        default:
            var result: SMARTPermissions = []
            var next = 0
            for letter in text {
                guard let index = Self.ordered[next...].firstIndex(where: { $0.0 == letter }) else { return nil }
                result.insert(Self.ordered[index].1)
                next = index + 1
            }
            guard !result.isEmpty else { return nil }
            self = result
        }
    }
}

/// One clinical SMART scope, such as `patient/Observation.rs`, `user/*.cruds` or `system/Patient.read`.
package struct SMARTScope: Sendable, Hashable, CustomStringConvertible {
    /// Whose data: the launch patient's compartment, whatever the user may see, or a backend service's.
    package enum Context: String, Sendable, Hashable { case patient, user, system }

    package var context: Context
    /// A resource type, or `*` for all.
    package var resourceType: String
    package var permissions: SMARTPermissions

    package init(context: Context, resourceType: String, permissions: SMARTPermissions) {
        self.context = context
        self.resourceType = resourceType
        self.permissions = permissions
    }

    /// Parses one clinical scope; nil for anything else (`openid`, `launch`, `fhirUser`, scopes
    /// with v2 query restrictions such as `patient/Observation.rs?category=laboratory`, typos).
    /// Restricted scopes are ignored rather than widened: they grant nothing here.
    package init?<S: StringProtocol>(_ text: S) {
        guard let slash = text.firstIndex(of: "/"), let dot = text.lastIndex(of: "."), slash < dot,
            let context = Context(rawValue: String(text[..<slash]))
        else { return nil }
        let type = text[text.index(after: slash)..<dot]
        guard type == "*" || (!type.isEmpty && type.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }),
            let permissions = SMARTPermissions(scopeSuffix: text[text.index(after: dot)...])
        else { return nil }
        self.init(context: context, resourceType: String(type), permissions: permissions)
    }

    package var description: String { "\(context.rawValue)/\(resourceType).\(permissions)" }

    /// Whether this scope grants `permission` on `type`.
    package func grants(_ permission: SMARTPermissions, on type: String) -> Bool {
        (resourceType == "*" || resourceType == type) && permissions.isSuperset(of: permission)
    }
}

/// The clinical scopes of a token and what they allow.
///
/// A `user/` or `system/` scope grants access to any resource of the type (within the caller's
/// tenant); a `patient/` scope only to resources in the launch patient's compartment.
package struct SMARTGrant: Sendable, Equatable {
    /// The outcome of asking for one permission on one type.
    package enum Access: Sendable, Equatable {
        /// Any resource of the type.
        case any
        /// Only resources in the launch patient's compartment (see ``PatientCompartment``).
        case patientCompartment
        /// Nothing: no scope grants the permission.
        case denied
    }

    package var scopes: [SMARTScope]

    package init(scopes: [SMARTScope]) { self.scopes = scopes }

    /// Reads a space-separated `scope` claim; entries that are not clinical scopes are skipped.
    package init(scopeClaim: String) {
        scopes = scopeClaim.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap(SMARTScope.init)
    }

    /// What `permission` on `type` is allowed to reach.
    package func access(_ permission: SMARTPermissions, on type: String) -> Access {
        let granting = scopes.filter { $0.grants(permission, on: type) }
        if granting.contains(where: { $0.context != .patient }) { return .any }
        return granting.isEmpty ? .denied : .patientCompartment
    }

    /// Whether any scope is a `patient/` scope (such a token needs a `patient` claim).
    package var hasPatientScopes: Bool { scopes.contains { $0.context == .patient } }
}

/// The FHIR REST interactions that scopes govern, and the permission each needs.
package enum FHIRInteraction: String, Sendable {
    case read, vread, history, search, create, update, delete

    package var permission: SMARTPermissions {
        switch self {
        case .read, .vread, .history: .read
        case .search: .search
        case .create: .create
        case .update: .update
        case .delete: .delete
        }
    }
}
