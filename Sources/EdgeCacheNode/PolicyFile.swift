import EdgeCacheCore
import Foundation
import Yams

/// Reads and validates a policy registry file (`edge-config/policy.yaml`).
///
/// ```yaml
/// version: "2026-11-22.1"
/// classes:
///   clinical-critical:
///     ttl_seconds: 300
///     consistency: read-after-write
///     stale_if_error_seconds: 43200     # or: unlimited
///     replication: full                 # full | resident
///     eviction_priority: 90             # lower is evicted first (resident classes only)
///     conflict: reject                  # reject | last-writer-wins
///     audit_class: phi-sensitive
///     owner: clinical-informatics
///     retention_days: unlimited
/// types:
///   Basic: commercial                   # resource type → class (overrides the defaults)
/// ```
/// A class or field the file leaves out keeps DESIGN.md's default. Errors name file and line.
package enum PolicyFile {
    package static func load(path: String) throws(ConfigError) -> PolicyRegistry {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, "cannot read the policy file")
        }
        return try parse(text, file: path)
    }

    package static func parse(_ text: String, file: String) throws(ConfigError) -> PolicyRegistry {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { throw ConfigError(file: file, line: nil, "the policy file is empty") }
            node = composed
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: file, line: nil, "not valid YAML: \(error)")
        }
        var root = try YAMLMap(file: file, node: node, path: "")
        let version = try root.requiredString("version", hint: "a label edges report, e.g. \"2026-11-22.1\"")
        guard version.count <= 64, version.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }) else {
            throw ConfigError(file: file, line: root.line, "'version' must be 1 to 64 letters, digits, '-', '.', '_' or ':'")
        }
        var registry = DefaultPolicy.registry
        registry.version = version
        if let classesNode = node.mapping?["classes"] {
            _ = try root.map("classes")
            guard let mapping = classesNode.mapping else {
                throw ConfigError(file: file, line: classesNode.mark?.line, "'classes' must map class names to their rules")
            }
            for (keyNode, valueNode) in mapping {
                let name = keyNode.string ?? "?"
                guard let dataClass = DataClass(rawValue: name) else {
                    throw ConfigError(
                        file: file, line: keyNode.mark?.line,
                        "unknown class '\(name)'; expected one of: \(DataClass.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                var map = try YAMLMap(file: file, node: valueNode, path: "classes.\(name)")
                registry.classes[dataClass] = try classPolicy(&map, base: DefaultPolicy.policy(for: dataClass), file: file)
                try map.rejectUnknownKeys()
            }
        }
        if let typesNode = node.mapping?["types"] {
            _ = try root.map("types")
            for (keyNode, valueNode) in typesNode.mapping ?? [:] {
                let type = keyNode.string ?? "?"
                guard ResourceTypes.isStorable(type) else {
                    throw ConfigError(file: file, line: keyNode.mark?.line, "'types.\(type)' is not a FHIR R4 resource type")
                }
                guard let dataClass = valueNode.string.flatMap(DataClass.init) else {
                    throw ConfigError(
                        file: file, line: valueNode.mark?.line,
                        "'types.\(type)' must name a class (\(DataClass.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                if type == "Consent" && dataClass != .consent || type != "Consent" && dataClass == .consent {
                    throw ConfigError(file: file, line: valueNode.mark?.line, "only Consent belongs to the consent class")
                }
                registry.typeClasses[type] = dataClass
            }
        }
        try root.rejectUnknownKeys()
        return registry
    }

    private static func classPolicy(_ map: inout YAMLMap, base: ClassPolicy, file: String) throws(ConfigError) -> ClassPolicy {
        var p = base
        let name = base.dataClass.rawValue
        p.ttlSeconds = try map.int("ttl_seconds", range: 0...31_536_000) ?? p.ttlSeconds
        if let text = try map.string("consistency") {
            guard let value = Consistency(rawValue: text) else {
                throw ConfigError(
                    file: file, line: map.line(of: "consistency"),
                    "'classes.\(name).consistency' must be one of \(Consistency.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'"
                )
            }
            p.consistency = value
        }
        p.staleIfErrorSeconds = try limit(&map, "stale_if_error_seconds", current: p.staleIfErrorSeconds, name: name, file: file)
        if let text = try map.string("replication") {
            guard let value = ReplicationMode(rawValue: text) else {
                throw ConfigError(
                    file: file, line: map.line(of: "replication"), "'classes.\(name).replication' must be full or resident, got '\(text)'")
            }
            p.replication = value
        }
        p.evictionPriority = try map.int("eviction_priority", range: 0...1000) ?? p.evictionPriority
        if let text = try map.string("conflict") {
            guard let value = ConflictRule(rawValue: text) else {
                throw ConfigError(
                    file: file, line: map.line(of: "conflict"),
                    "'classes.\(name).conflict' must be reject or last-writer-wins, got '\(text)'")
            }
            p.conflictRule = value
        }
        p.auditClass = try map.string("audit_class") ?? p.auditClass
        p.owner = try map.string("owner") ?? p.owner
        p.retentionDays = try limit(&map, "retention_days", current: p.retentionDays, name: name, file: file)
        // Rules the registry will not loosen, whatever the file says.
        if [.consent, .clinicalCritical].contains(base.dataClass), p.conflictRule == .lastWriterWins {
            throw ConfigError(
                file: file, line: map.line(of: "conflict"),
                "'classes.\(name).conflict' cannot be last-writer-wins: clinical conflicts go to review")
        }
        if base.dataClass == .consent, p.replication != .full {
            throw ConfigError(
                file: file, line: map.line(of: "replication"),
                "'classes.consent.replication' must be full: consent is never fetched on demand")
        }
        return p
    }

    /// A number of seconds or days, or `unlimited`.
    private static func limit(
        _ map: inout YAMLMap, _ key: String, current: Int?, name: String, file: String
    ) throws(ConfigError)
        -> Int?
    {
        if let text = try map.string(key) {
            if text == "unlimited" { return nil }
            guard let n = Int(text), n >= 0 else {
                throw ConfigError(
                    file: file, line: map.line(of: key), "'classes.\(name).\(key)' must be a whole number or 'unlimited', got '\(text)'")
            }
            return n
        }
        return current
    }
}
