/// Index terms of a resource: what a store keeps (as keyed hashes, never the text) so that a
/// search reads only the rows that may match. A term only narrows; ``SearchClause/matches(_:)``
/// decides on the unsealed resource. The kinds, and what each reveals to someone holding the
/// database file, are in docs/ARCHITECTURE.md ("Sealed search indexes").
package enum SearchTerms {
    /// The term scheme: a fingerprint of the extraction rules (``scheme``) and of the
    /// generated parameter table, so that a new parameter in the table re-indexes every store
    /// by itself. A store whose terms were written under another value reads every row of a
    /// type (correct, slower) until it has re-indexed. Never 1 (the first scheme's number).
    package static let version: Int64 = {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
        for byte in "scheme \(scheme)\n\(SearchParameters.r4Table)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return Int64(hash & 0x3fff_ffff_ffff_ffff) | 2
    }()

    /// Raise when ``extract(from:type:)`` changes what it makes of the same table.
    static let scheme = 2

    /// Characters of the normalized string a string term keeps.
    package static let stringPrefixLength = 3

    /// All terms of a resource of `type`: a token, reference and uri term per value of every
    /// search parameter of the type, a string-prefix term per string value, and the compartment
    /// terms (``compartmentTerms(from:)``) that every scheme has had.
    package static func extract(from object: JSONObject, type: String) -> [String] {
        var terms = Set(compartmentTerms(from: object))
        for parameter in SearchParameters.all(of: type) where parameter.code != "_id" && parameter.code != "_lastUpdated" {
            for path in parameter.paths {
                for (value, _) in path.values(in: object) {
                    switch parameter.kind {
                    case .token:
                        for coding in SearchTokens.codings(of: value) {
                            terms.insert(token(parameter.code, system: nil, code: coding.code))
                            if let system = coding.system, !system.isEmpty {
                                terms.insert(token(parameter.code, system: system, code: coding.code))
                                terms.insert(token(parameter.code, system: system, code: ""))
                            }
                        }
                    case .reference:
                        guard let ref = value.objectValue?["reference"]?.stringValue, let normalized = normalizeReference(ref),
                            path.target.map({ normalized.hasPrefix($0 + "/") }) ?? true
                        else { continue }
                        terms.insert(reference(parameter.code, normalized))
                    case .string:
                        for s in SearchText.strings(of: value) {
                            if let term = stringPrefix(parameter.code, SearchText.normalize(s)) { terms.insert(term) }
                        }
                    case .uri:
                        if let s = value.stringValue { terms.insert(uri(parameter.code, s)) }
                    case .date, .number, .quantity:
                        continue
                    }
                }
            }
        }
        return terms.sorted()
    }

    /// `identifier|system|value` and `identifier||value` for each identifier; `patient|Patient/x`
    /// and `subject|Type/x` for the `subject` and `patient` elements, whatever the type: the
    /// terms a patient-compartment search narrows by, kept by every term scheme.
    static func compartmentTerms(from object: JSONObject) -> [String] {
        var terms: [String] = []
        if let identifiers = object["identifier"]?.arrayValue {
            for identifier in identifiers {
                guard let o = identifier.objectValue, let value = o["value"]?.stringValue else { continue }
                let system = o["system"]?.stringValue ?? ""
                terms.append("identifier|\(system)|\(value)")
                if !system.isEmpty { terms.append("identifier||\(value)") }
            }
        }
        for field in ["subject", "patient"] {
            guard let ref = object[field]?.objectValue?["reference"]?.stringValue,
                let normalized = normalizeReference(ref)
            else { continue }
            if normalized.hasPrefix("Patient/") { terms.append("patient|\(normalized)") }
            if field == "subject" { terms.append("subject|\(normalized)") }
        }
        return terms
    }

    /// `code|system|value`: `system` nil for any system; an empty value for "any code of the system".
    package static func token(_ code: String, system: String?, code value: String) -> String {
        "\(code)|\(system ?? "")|\(value)"
    }

    /// `code|Type/id`.
    package static func reference(_ code: String, _ typeAndID: String) -> String { "\(code)|\(typeAndID)" }

    /// `code^abc`: the first ``stringPrefixLength`` characters of a normalized string (nil when
    /// it is shorter: such a string is found by reading the type's rows).
    package static func stringPrefix(_ code: String, _ normalized: String) -> String? {
        guard normalized.count >= stringPrefixLength else { return nil }
        return "\(code)^\(normalized.prefix(stringPrefixLength))"
    }

    /// `code=uri`.
    package static func uri(_ code: String, _ uri: String) -> String { "\(code)=\(uri)" }

    /// `Type/id` from a relative or absolute reference (a trailing `_history/n` is dropped).
    package static func normalizeReference(_ ref: String) -> String? {
        var parts = ref.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if parts.count >= 4, parts[parts.count - 2] == "_history" { parts.removeLast(2) }
        guard parts.count >= 2 else { return nil }
        let type = parts[parts.count - 2]
        let id = parts[parts.count - 1]
        guard ResourceTypes.all.contains(type), ResourceID.isValid(id) else { return nil }
        return "\(type)/\(id)"
    }
}
