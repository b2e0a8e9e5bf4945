/// A versioned policy registry: the rules of every data class and which class each resource
/// type belongs to. The origin loads it from `policy.yaml` and publishes it to its edges
/// (`GET /replication/v1/policy`); an edge keeps the last one it received.
package struct PolicyRegistry: Sendable, Equatable {
    /// Operator-chosen version label (e.g. `2026-11-22.1`); edges report it.
    package var version: String
    /// Rules per class; every class has an entry.
    package var classes: [DataClass: ClassPolicy]
    /// Resource type → class, for the types the registry names (others are `clinical`).
    package var typeClasses: [String: DataClass]

    package init(version: String, classes: [DataClass: ClassPolicy], typeClasses: [String: DataClass]) {
        self.version = version
        self.classes = classes
        self.typeClasses = typeClasses
    }

    package func dataClass(of type: String) -> DataClass { typeClasses[type] ?? .clinical }

    package func policy(for dataClass: DataClass) -> ClassPolicy {
        classes[dataClass] ?? DefaultPolicy.policy(for: dataClass)
    }

    package func policy(forType type: String) -> ClassPolicy { policy(for: dataClass(of: type)) }

    /// Whether an edge keeps only entries already cached for this type.
    package func isResident(_ type: String) -> Bool { policy(forType: type).replication == .resident }

    // MARK: Wire form

    /// The registry as JSON (what the origin publishes and an edge stores).
    package func json() -> [UInt8] {
        var classMembers: [JSONObject.Member] = []
        for dataClass in DataClass.allCases {
            let p = policy(for: dataClass)
            var o = JSONObject()
            o["owner"] = .string(p.owner)
            o["ttl_seconds"] = .number(String(p.ttlSeconds))
            o["consistency"] = .string(p.consistency.rawValue)
            o["stale_if_error_seconds"] = p.staleIfErrorSeconds.map { .number(String($0)) } ?? .null
            o["replication"] = .string(p.replication.rawValue)
            o["eviction_priority"] = .number(String(p.evictionPriority))
            o["conflict"] = .string(p.conflictRule.rawValue)
            o["audit_class"] = .string(p.auditClass)
            o["retention_days"] = p.retentionDays.map { .number(String($0)) } ?? .null
            classMembers.append(.init(key: dataClass.rawValue, value: .object(o)))
        }
        let types = typeClasses.keys.sorted().map { JSONObject.Member(key: $0, value: .string(typeClasses[$0]!.rawValue)) }
        return JSONValue.object(
            JSONObject([
                .init(key: "version", value: .string(version)), .init(key: "classes", value: .object(JSONObject(classMembers))),
                .init(key: "types", value: .object(JSONObject(types))),
            ])
        ).serialized()
    }

    /// Reads the wire form; nil when it is not a complete registry.
    package static func decode(_ bytes: [UInt8]) -> PolicyRegistry? {
        guard case .object(let root)? = try? JSONParser.parse(bytes), let version = root["version"]?.stringValue,
            let classObject = root["classes"]?.objectValue, let typeObject = root["types"]?.objectValue
        else { return nil }
        func int(_ v: JSONValue?) -> Int? {
            if case .number(let text)? = v { return Int(text) }
            return nil
        }
        var classes: [DataClass: ClassPolicy] = [:]
        for member in classObject.members {
            guard let dataClass = DataClass(rawValue: member.key), let o = member.value.objectValue,
                let ttl = int(o["ttl_seconds"]), let consistency = o["consistency"]?.stringValue.flatMap(Consistency.init),
                let replication = o["replication"]?.stringValue.flatMap(ReplicationMode.init),
                let conflict = o["conflict"]?.stringValue.flatMap(ConflictRule.init), let priority = int(o["eviction_priority"])
            else { return nil }
            classes[dataClass] = ClassPolicy(
                dataClass: dataClass, owner: o["owner"]?.stringValue ?? "", ttlSeconds: ttl, consistency: consistency,
                staleIfErrorSeconds: int(o["stale_if_error_seconds"]), replication: replication, evictionPriority: priority,
                conflictRule: conflict, auditClass: o["audit_class"]?.stringValue ?? "phi", retentionDays: int(o["retention_days"]))
        }
        guard classes.count == DataClass.allCases.count else { return nil }
        var types: [String: DataClass] = [:]
        for member in typeObject.members {
            guard let dataClass = member.value.stringValue.flatMap(DataClass.init) else { return nil }
            types[member.key] = dataClass
        }
        return PolicyRegistry(version: version, classes: classes, typeClasses: types)
    }
}
