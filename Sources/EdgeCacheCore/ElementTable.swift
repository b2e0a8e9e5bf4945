/// The R4 element definitions of the generated table (`ElementTable+R4.swift`, from the R4
/// StructureDefinitions by `tools/gen-element-table`), looked up by owner type and path.
extension ElementTable {
    /// One element of a resource or data type.
    package struct Element: Sendable {
        /// Path below the owner (`name`, `contact.name`, `value[x]`).
        package var path: String
        package var min: Int
        /// nil for `*`.
        package var max: Int?
        /// Type codes; `BackboneElement`/`Element` for an element whose own elements follow,
        /// `@path` for one defined as another element of the same owner.
        package var types: [String]
        package var isSummary: Bool
        package var isModifier: Bool

        /// The element's name in its parent (`value[x]` for a choice).
        package var name: Substring { path.split(separator: ".").last ?? Substring(path) }
        package var isChoice: Bool { path.hasSuffix("[x]") }
        /// Whether its own elements are defined under its path (or under the path it names).
        package var isGroup: Bool { types == ["BackboneElement"] || types == ["Element"] || types.first?.hasPrefix("@") == true }
    }

    /// Elements by owner, then by path.
    static let byOwner: [String: [String: Element]] = {
        var out: [String: [String: Element]] = [:]
        for line in r4Table.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 7, let min = Int(f[2]) else { continue }
            out[f[0], default: [:]][f[1]] = Element(
                path: f[1], min: min, max: Int(f[3]), types: f[4].split(separator: ",").map(String.init),
                isSummary: f[5] == "1", isModifier: f[6] == "1")
        }
        return out
    }()

    /// Whether the table knows `type` (a resource or data type of R4).
    package static func knows(_ type: String) -> Bool { byOwner[type] != nil }

    /// The element `name` (a JSON key: `valueQuantity` finds `value[x]`) below `parent` (the
    /// owner's path of the enclosing element, "" at the top) of `owner`, inherited ones included.
    package static func element(_ key: String, parent: String, owner: String) -> Element? {
        let name = key.hasPrefix("_") ? String(key.dropFirst()) : key
        let prefix = parent.isEmpty ? "" : parent + "."
        if let own = byOwner[owner] {
            if let e = own[prefix + name] { return e }
            // A choice element's key is its name and a type (`valueQuantity`, `onsetDateTime`).
            for i in name.indices where name[i].isUppercase {
                if let e = own[prefix + name[..<i] + "[x]"] { return e }
            }
        }
        let base: [String]
        if parent.isEmpty {
            base = ["Binary", "Bundle", "Parameters"].contains(owner) ? ["Resource"] : ["DomainResource", "Resource"]
        } else {
            base = ["BackboneElement", "Element"]
        }
        for b in base { if let e = byOwner[b]?[name] { return e } }
        return nil
    }

    /// The path whose elements are those of `element` (itself, or the one it is defined as).
    package static func groupPath(of element: Element) -> String {
        if let first = element.types.first, first.hasPrefix("@") { return String(first.dropFirst()) }
        return element.path
    }
}
