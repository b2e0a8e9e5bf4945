/// The FHIR R4 search parameters this node answers, per resource type, from the generated
/// table (``r4Table``, made by `tools/gen-search-parameters` from the R4 SearchParameter
/// definitions). What the table lists is what the CapabilityStatement advertises, and every
/// parameter in it is filtered on: there is no parameter that is accepted and not applied.
package enum SearchParameters {
    /// A search parameter of one resource type.
    package struct Parameter: Sendable {
        package enum Kind: String, Sendable {
            case token, string, reference, date, quantity, number, uri
        }

        package let code: String
        package let kind: Kind
        /// The definition's canonical URL (advertised in the CapabilityStatement).
        package let url: String
        /// The elements the parameter reads; a resource matches when any of them does.
        package let paths: [SearchPath]
        /// For a reference: the resource types it may point at (empty: any).
        package let targets: [String]

        /// The one type every reference the parameter reads points at, if there is one: an id
        /// given alone (`patient=123`) means that type's resource.
        package var soleTarget: String? {
            let pathTargets = Set(paths.map(\.target))
            if pathTargets.count == 1, let only = pathTargets.first, let only { return only }
            return targets.count == 1 ? targets[0] : nil
        }
    }

    /// Parameters by resource type, then code; `Resource` holds those of every type.
    package static let r4: [String: [String: Parameter]] = {
        var table: [String: [String: Parameter]] = [:]
        for line in r4Table.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 6, let kind = Parameter.Kind(rawValue: fields[2]) else { continue }
            let targets = fields[5] == "*" || fields[5].isEmpty ? [] : fields[5].split(separator: ",").map(String.init)
            table[fields[0], default: [:]][fields[1]] = Parameter(
                code: fields[1], kind: kind, url: fields[3],
                paths: fields[4].split(separator: ";").map { SearchPath(String($0)) }, targets: targets)
        }
        return table
    }()

    /// The parameter `code` of `type` (its own, or one of every resource).
    package static func parameter(_ code: String, of type: String) -> Parameter? {
        r4[type]?[code] ?? r4["Resource"]?[code]
    }

    /// Every parameter of `type`, sorted by code (made once per type: the stream's apply asks
    /// for every resource it indexes).
    package static func all(of type: String) -> [Parameter] {
        byType[type] ?? byType["Resource"] ?? []
    }

    private static let byType: [String: [Parameter]] = {
        let common = r4["Resource"] ?? [:]
        var table: [String: [Parameter]] = [:]
        for type in ResourceTypes.all.union(["Resource"]) {
            let own = r4[type] ?? [:]
            table[type] = own.merging(common) { a, _ in a }.values.sorted { $0.code < $1.code }
        }
        return table
    }()
}

/// An element path in the generated table's grammar: `a.b` (the elements `b` of the elements
/// `a`), `a:Quantity` (the choice element `a[x]` as `Quantity`, i.e. `aQuantity`),
/// `a[system=phone]` (only elements whose `system` is `phone`) and a trailing `@Patient` (only
/// references to a Patient). A segment without a type that names a choice element (`effective`)
/// reads it as whichever type the resource has.
package struct SearchPath: Sendable, Equatable {
    package struct Step: Sendable, Equatable {
        package var name: String
        /// The choice type, as written in the definition (`Quantity`, `dateTime`).
        package var choice: String?
        package var filter: (key: String, value: String)?

        package static func == (a: Step, b: Step) -> Bool {
            a.name == b.name && a.choice == b.choice && a.filter?.key == b.filter?.key && a.filter?.value == b.filter?.value
        }
    }

    package var steps: [Step]
    /// For a reference: the one type it must point at.
    package var target: String?

    package init(_ text: String) {
        var body = Substring(text)
        if let at = body.firstIndex(of: "@") {
            target = String(body[body.index(after: at)...])
            body = body[..<at]
        }
        steps = body.split(separator: ".").map { segment in
            var name = segment
            var filter: (String, String)?
            if let open = name.firstIndex(of: "["), name.last == "]" {
                let inner = name[name.index(after: open)..<name.index(before: name.endIndex)]
                if let eq = inner.firstIndex(of: "=") {
                    filter = (String(inner[..<eq]), String(inner[inner.index(after: eq)...]))
                }
                name = name[..<open]
            }
            var choice: String?
            if let colon = name.firstIndex(of: ":") {
                choice = String(name[name.index(after: colon)...])
                name = name[..<colon]
            }
            return Step(name: String(name), choice: choice, filter: filter)
        }
    }

    /// The values at this path in `object` (arrays flattened), with the choice type each was
    /// read as when the path ends in a choice element (`Quantity`, `Period`, …).
    package func values(in object: JSONObject) -> [(value: JSONValue, type: String?)] {
        // One plain element (most parameters): no intermediate lists.
        if steps.count == 1, steps[0].choice == nil, steps[0].filter == nil, let found = object[steps[0].name] {
            if case .array(let items) = found { return items.map { ($0, nil) } }
            return [(found, nil)]
        }
        var current: [(value: JSONValue, type: String?)] = [(.object(object), nil)]
        for step in steps {
            var next: [(value: JSONValue, type: String?)] = []
            for (value, _) in current {
                guard let o = value.objectValue else { continue }
                for (found, type) in Self.member(o, step) {
                    let items = found.arrayValue ?? [found]
                    for item in items {
                        if let filter = step.filter, item.objectValue?[filter.key]?.stringValue != filter.value { continue }
                        next.append((item, type))
                    }
                }
            }
            current = next
        }
        return current
    }

    /// The member(s) a step names: `name`, or for a choice `name` + the type (`valueQuantity`),
    /// or without a declared type any `name<Type>` member.
    private static func member(_ o: JSONObject, _ step: Step) -> [(JSONValue, String?)] {
        if let choice = step.choice {
            let key = step.name + choice.prefix(1).uppercased() + choice.dropFirst()
            return o[key].map { [($0, choice)] } ?? []
        }
        if let v = o[step.name] { return [(v, nil)] }
        var found: [(JSONValue, String?)] = []
        // A choice element: the name and an upper-case type (`effectiveDateTime`), compared as bytes.
        let name = step.name.utf8
        for member in o.members {
            let key = member.key.utf8
            guard key.count > name.count, key.starts(with: name) else { continue }
            let rest = key.dropFirst(name.count)
            guard let first = rest.first, first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") else { continue }
            found.append((member.value, String(decoding: rest, as: UTF8.self)))
        }
        return found
    }
}
