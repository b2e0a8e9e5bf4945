import EdgeCacheCore

/// The server's R4 CapabilityStatement. Only elements of the R4 definition: strict client
/// models (SMART `fhirclient`) reject anything else.
package enum CapabilityStatement {
    package static let softwareVersion = "0.1.0"

    /// The statement for a node with the given role, as JSON.
    package static func json(role: String, baseURL: String, date: Int64) -> [UInt8] {
        func obj(_ members: [(String, JSONValue)]) -> JSONValue {
            .object(JSONObject(members.map { JSONObject.Member(key: $0.0, value: $0.1) }))
        }
        let interactions: [JSONValue] = ["read", "vread", "update", "delete", "history-instance", "create", "search-type"]
            .map { obj([("code", .string($0))]) }
        // Exactly the parameters of the generated R4 table: each is applied, none is accepted and ignored.
        func searchParams(_ type: String) -> [JSONValue] {
            SearchParameters.all(of: type).map { p in
                obj([("name", .string(p.code)), ("definition", .string(p.url)), ("type", .string(p.kind.rawValue))])
            }
        }
        let resources: [JSONValue] = ResourceTypes.all.subtracting(ResourceTypes.notStorable).sorted().map { type in
            obj([
                ("type", .string(type)),
                ("interaction", .array(interactions)),
                ("versioning", .string("versioned")),
                ("readHistory", .bool(true)),
                ("updateCreate", .bool(true)),
                ("conditionalCreate", .bool(false)),
                ("conditionalRead", .string("not-supported")),
                ("conditionalUpdate", .bool(false)),
                ("conditionalDelete", .string("not-supported")),
                ("searchParam", .array(searchParams(type))),
            ])
        }
        let statement = obj([
            ("resourceType", .string("CapabilityStatement")),
            ("status", .string("active")),
            ("date", .string(FHIRTime.instant(millis: date))),
            ("publisher", .string("EdgeCache")),
            ("kind", .string("instance")),
            ("software", obj([("name", .string("EdgeCache \(role)")), ("version", .string(softwareVersion))])),
            ("implementation", obj([("description", .string("EdgeCache \(role) node")), ("url", .string(baseURL))])),
            ("fhirVersion", .string("4.0.1")),
            ("format", .array([.string("application/fhir+json"), .string("json")])),
            (
                "rest",
                .array([
                    obj([
                        ("mode", .string("server")),
                        (
                            "security",
                            obj([
                                ("cors", .bool(false)),
                                (
                                    "description",
                                    .string(
                                        "Mutual TLS: a client certificate from the configured CA is required; its tenant is the caller's tenant."
                                    )
                                ),
                            ])
                        ),
                        ("resource", .array(resources)),
                        // `Patient/[id]/[type]` searches (``ScopedBackend/search(_:type:query:compartment:)``).
                        ("compartment", .array([.string("http://hl7.org/fhir/CompartmentDefinition/patient")])),
                    ])
                ])
            ),
        ])
        return statement.serialized()
    }
}
