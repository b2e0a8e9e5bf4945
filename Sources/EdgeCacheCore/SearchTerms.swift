/// Index terms of a resource for the supported search parameters.
///
/// Terms are plain strings here; stores keep only keyed hashes of them, never the text.
package enum SearchTerms {
    /// `identifier|system|value` and `identifier||value` for each identifier; `patient|Patient/x`
    /// and `subject|Type/x` for the `subject` and `patient` references.
    package static func extract(from object: JSONObject) -> [String] {
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
        return Array(Set(terms)).sorted()
    }

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
