import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Testing

/// Every search parameter the CapabilityStatement advertises (every row of the generated R4
/// table, on every type it applies to) is applied by both stores: for each, a resource holding
/// a value at the parameter's element is found by a query for that value, and a query for
/// another value finds nothing; the origin's store and the edge's store answer alike.
@Suite struct SearchParameterCoverageTests {
    /// A value for a parameter's element, and a query value that must find it and one that must not.
    struct Sample {
        var value: JSONValue
        var match: String
        var miss: String
    }

    static func sample(_ parameter: SearchParameters.Parameter, _ path: SearchPath) -> Sample {
        func obj(_ members: [(String, JSONValue)]) -> JSONValue {
            .object(JSONObject(members.map { JSONObject.Member(key: $0.0, value: $0.1) }))
        }
        switch parameter.kind {
        case .token:
            if let filter = path.steps.last?.filter {
                return Sample(
                    value: obj([(filter.key, .string(filter.value)), ("value", .string("tok-1"))]), match: "tok-1", miss: "tok-2")
            }
            return Sample(
                value: obj([("coding", .array([obj([("system", .string("urn:test")), ("code", .string("tok-1"))])]))]),
                match: "urn:test|tok-1", miss: "urn:test|tok-2")
        case .string:
            return Sample(value: .string("Zebra"), match: "zeb", miss: "yak")
        case .reference:
            let target = path.target ?? parameter.targets.first ?? "Patient"
            return Sample(value: obj([("reference", .string("\(target)/ref-1"))]), match: "\(target)/ref-1", miss: "\(target)/ref-2")
        case .date:
            return Sample(value: .string("2024-03-15"), match: "2024-03-15", miss: "2023")
        case .quantity, .number:
            return Sample(
                value: obj([("value", .number("5")), ("system", .string("http://unitsofmeasure.org")), ("code", .string("mg"))]),
                match: "5",
                miss: "6")
        case .uri:
            return Sample(value: .string("urn:uri:1"), match: "urn:uri:1", miss: "urn:uri:2")
        }
    }

    /// A resource of `type` whose only content is `value` at `path`.
    static func body(type: String, path: SearchPath, value: JSONValue) -> JSONObject {
        func nest(_ steps: ArraySlice<SearchPath.Step>) -> JSONValue {
            guard let step = steps.first else { return value }
            let key = step.choice.map { step.name + $0.prefix(1).uppercased() + $0.dropFirst() } ?? step.name
            var inner = nest(steps.dropFirst())
            if steps.count > 1, let filter = step.filter, case .object(var o) = inner {
                o[filter.key] = .string(filter.value)
                inner = .object(o)
            }
            return .object(JSONObject([JSONObject.Member(key: key, value: inner)]))
        }
        var object = nest(path.steps[...]).objectValue ?? JSONObject()
        object["resourceType"] = .string(type)
        return object
    }

    @Test func everyAdvertisedParameterFindsItsValueAndNothingElseAtBothStores() async throws {
        let dir = TempDir()
        let kek = try KeyEncryptionKey.generate()
        let origin = try SQLiteOriginStore(path: dir.path + "/origin.sqlite", kek: kek, clock: SystemWallClock())
        let edge = try EdgeStore(path: dir.path + "/edge.sqlite", tenant: "a", kek: kek, clock: SystemWallClock())
        var cases: [(type: String, id: String, code: String, sample: Sample)] = []
        let types = ResourceTypes.all.subtracting(ResourceTypes.notStorable).sorted()
        for type in types {
            for (n, parameter) in SearchParameters.all(of: type).enumerated() {
                let id = "\(parameter.code.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(40))-\(n)"
                switch parameter.code {
                case "_id":
                    cases.append((type, id, "_id", Sample(value: .null, match: id, miss: "no-such-id")))
                    continue
                case "_lastUpdated":
                    cases.append((type, id, "_lastUpdated", Sample(value: .null, match: "ge2000-01-01", miss: "lt2000-01-01")))
                    continue
                default: break
                }
                let path = parameter.paths.first { $0.steps.last?.choice != "SampledData" } ?? parameter.paths[0]
                cases.append((type, id, parameter.code, Self.sample(parameter, path)))
                let written = try await origin.write(
                    tenant: "a",
                    .update(
                        type: type, id: id, resource: Self.body(type: type, path: path, value: Self.sample(parameter, path).value),
                        ifMatch: nil))
                _ = try await edge.entries.put(try #require(written.version))
            }
            // `_id` and `_lastUpdated` need a resource of the type too.
            let plain = try await origin.write(
                tenant: "a",
                .update(type: type, id: "plain", resource: JSONObject([.init(key: "resourceType", value: .string(type))]), ifMatch: nil))
            _ = try await edge.entries.put(try #require(plain.version))
        }
        var checked = 0
        for c in cases {
            let id = ["_id", "_lastUpdated"].contains(c.code) ? "plain" : c.id
            let match = try SearchQuery.parse([(c.code, c.code == "_id" ? "plain" : c.sample.match), ("_count", "1000")], type: c.type)
            let atOrigin = try await origin.search(tenant: "a", type: c.type, query: match).resources.map(\.id)
            let atEdge = try await edge.entries.search(type: c.type, query: match).resources.map(\.id)
            #expect(atOrigin.contains(id), "\(c.type)?\(c.code)=\(c.sample.match) did not find \(id): \(atOrigin)")
            #expect(atOrigin == atEdge, "\(c.type)?\(c.code): origin \(atOrigin), edge \(atEdge)")
            let miss = try SearchQuery.parse([(c.code, c.sample.miss)], type: c.type)
            let missed = try await origin.search(tenant: "a", type: c.type, query: miss).resources.map(\.id)
            #expect(missed.isEmpty, "\(c.type)?\(c.code)=\(c.sample.miss) found \(missed)")
            #expect(try await edge.entries.search(type: c.type, query: miss).resources.isEmpty)
            checked += 1
        }
        // The 23 US Core types' parameters and the common ones on every type.
        #expect(checked > 1000, "\(checked)")
    }
}
