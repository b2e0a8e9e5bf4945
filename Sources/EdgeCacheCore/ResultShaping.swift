/// `_summary` and `_elements` (R4 3.1.1.5.8-9): which parts of each resource an answer holds.
/// Applied to the resources as written (never to what a store keeps or an edge caches), and a
/// resource cut short is marked with the `SUBSETTED` tag so no client mistakes it for the whole.
/// Summary elements and mandatory elements come from the R4 definitions (``ElementTable``).
package struct ResultShaping: Sendable, Equatable {
    package enum Summary: String, Sendable {
        /// Only the elements the definitions mark as summary (resource and backbone levels; a
        /// data type's value is kept whole).
        case summary = "true"
        /// `text`, `id`, `meta` and the mandatory top-level elements.
        case text
        /// Everything but `text`.
        case data
        /// The total only, no entries.
        case count
        /// Everything.
        case full = "false"
    }

    package var summary: Summary?
    /// `_elements`: the top-level elements asked for (plus `id`, `meta` and the mandatory ones).
    package var elements: Set<String>?

    package init(summary: Summary? = nil, elements: Set<String>? = nil) {
        self.summary = summary
        self.elements = elements
    }

    /// Whether resources are written as stored.
    package var isIdentity: Bool { elements == nil && (summary == nil || summary == .full || summary == .count) }

    /// The `_summary` or `_elements` value of a request for `type`.
    /// - Throws: 400 for an unknown `_summary` value, an `_elements` name that is no element of
    ///   `type`, or both parameters together.
    package static func parse(summary: String?, elements: String?, type: String) throws(FHIRError) -> ResultShaping {
        var shaping = ResultShaping()
        if let summary {
            guard let mode = Summary(rawValue: summary) else {
                throw .invalid("_summary must be true, text, data, count or false")
            }
            shaping.summary = mode
        }
        if let elements {
            guard shaping.summary == nil else { throw .invalid("_summary and _elements cannot be used together") }
            var names = Set<String>()
            for raw in elements.split(separator: ",") {
                var name = String(raw).trimmingSpaces()
                // `Patient.name` (R5 style) names an element of the type searched; another type's is left to it.
                if let dot = name.firstIndex(of: ".") {
                    guard name[..<dot] == type else { continue }
                    name = String(name[name.index(after: dot)...])
                }
                if name.hasSuffix("[x]") { name.removeLast(3) }
                guard !name.isEmpty, ElementTable.element(name, parent: "", owner: type) != nil || isChoiceBase(name, of: type) else {
                    throw .invalid("_elements: '\(name.prefix(64))' is not an element of \(type)")
                }
                names.insert(name)
            }
            shaping.elements = names
        }
        return shaping
    }

    private static func isChoiceBase(_ name: String, of type: String) -> Bool {
        ElementTable.element(name + "[x]", parent: "", owner: type)?.isChoice == true
    }

    /// `json` (a stored resource of `type`) as this shaping writes it.
    package func apply(_ json: [UInt8], type: String) -> [UInt8] {
        guard !isIdentity, ElementTable.knows(type), case .object(let object)? = try? JSONParser.parse(json) else { return json }
        var out = JSONObject()
        for member in object.members {
            let key = member.key
            if ["resourceType", "id", "meta"].contains(key) {
                out[key] = member.value
                continue
            }
            let element = ElementTable.element(key, parent: "", owner: type)
            let keep: Bool
            var value = member.value
            if let elements {
                let bare = key.hasPrefix("_") ? String(key.dropFirst()) : key
                keep =
                    elements.contains(bare) || (element?.min ?? 0) >= 1
                    || (element.map { $0.isChoice && elements.contains(String($0.name.dropLast(3))) } ?? false)
            } else {
                switch summary {
                case .summary:
                    keep = element?.isSummary ?? false
                    if keep, let element, element.isGroup {
                        value = Self.summarized(value, path: ElementTable.groupPath(of: element), owner: type)
                    }
                case .text: keep = key == "text" || (element?.min ?? 0) >= 1
                case .data: keep = key != "text"
                default: keep = true
                }
            }
            if keep { out[key] = value }
        }
        var meta = out["meta"]?.objectValue ?? JSONObject()
        var tags = meta["tag"]?.arrayValue ?? []
        tags.append(
            .object(
                JSONObject([
                    .init(key: "system", value: .string("http://terminology.hl7.org/CodeSystem/v3-ObservationValue")),
                    .init(key: "code", value: .string("SUBSETTED")),
                    .init(key: "display", value: .string("subsetted")),
                ])))
        meta["tag"] = .array(tags)
        out["meta"] = .object(meta)
        out.moveToFront(["resourceType", "id", "meta"])
        return JSONValue.object(out).serialized()
    }

    /// The summary elements of a backbone element (or array of them) at `path` of `owner`.
    private static func summarized(_ value: JSONValue, path: String, owner: String) -> JSONValue {
        switch value {
        case .array(let items): return .array(items.map { summarized($0, path: path, owner: owner) })
        case .object(let object):
            var out = JSONObject()
            for member in object.members {
                guard let element = ElementTable.element(member.key, parent: path, owner: owner), element.isSummary else { continue }
                out[member.key] =
                    element.isGroup ? summarized(member.value, path: ElementTable.groupPath(of: element), owner: owner) : member.value
            }
            return .object(out)
        default: return value
        }
    }
}
