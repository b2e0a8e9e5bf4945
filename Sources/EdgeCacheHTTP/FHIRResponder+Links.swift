import EdgeCacheCore

extension FHIRResponder {
    /// Resolves a query's chains and reverse chains through the backend (as the caller: its
    /// scopes and compartment apply to what they read) into clauses and ids. A link that
    /// resolves to more than ``SearchQuery/maxLinked`` resources is refused as too costly.
    func resolveLinks(_ query: SearchQuery, type: String, caller: FHIRCaller) async throws -> SearchQuery {
        var query = query
        for chain in query.chains {
            var references: [(String, String)] = []
            for target in chain.targets {
                let inner = try SearchQuery.parse([(chain.inner, chain.value), ("_count", String(SearchQuery.maxLinked))], type: target)
                let page = try await backend.search(caller, type: target, query: inner).page
                guard !page.hasMore else { throw Self.tooManyLinked(chain.name) }
                references += page.resources.map { (target, $0.id) }
            }
            query.clauses.append(SearchClause(name: chain.name, parameter: chain.parameter, references: references))
        }
        for has in query.reverseChains {
            let inner = try SearchQuery.parse([(has.inner, has.value), ("_count", String(SearchQuery.maxLinked))], type: has.type)
            let page = try await backend.search(caller, type: has.type, query: inner).page
            guard !page.hasMore else { throw Self.tooManyLinked(has.name) }
            var ids = Set<String>()
            for resource in page.resources {
                guard case .object(let object)? = try? JSONParser.parse(resource.json) else { continue }
                for reference in SearchClause.references(of: object, has.reference) where reference.hasPrefix(type + "/") {
                    ids.insert(String(reference.dropFirst(type.count + 1)))
                }
            }
            query.ids = (query.ids.map { Set($0).intersection(ids) } ?? ids).sorted()
        }
        return query
    }

    static func tooManyLinked(_ name: String) -> FHIRError {
        FHIRError(
            status: 400, code: "too-costly",
            "'\(name.prefix(80))' matches more than \(SearchQuery.maxLinked) resources; narrow it")
    }

    /// The resources `_include` and `_revinclude` add to a page: read or searched through the
    /// backend as the caller, so a resource the caller may not see (403), or that does not exist
    /// (404, 410), is left out; any other failure (the origin unreachable) fails the search
    /// rather than answer an incomplete Bundle as complete. `:iterate` applies once more to
    /// what was included.
    func included(_ page: SearchPage, query: SearchQuery, caller: FHIRCaller) async throws -> [ResourceVersion] {
        guard !query.includes.isEmpty else { return [] }
        var seen = Set(page.resources.map { "\($0.type)/\($0.id)" })
        var added: [ResourceVersion] = []
        var frontier = page.resources
        for round in 0..<2 {
            var next: [ResourceVersion] = []
            for include in query.includes where round == 0 || include.iterate {
                let sources = frontier.filter { include.reverse || $0.type == include.source }
                if include.reverse {
                    let references = sources.map { "\($0.type)/\($0.id)" }.filter {
                        include.target == nil || $0.hasPrefix(include.target! + "/")
                    }
                    for parameter in include.parameters where !references.isEmpty {
                        for chunk in stride(from: 0, to: references.count, by: 100) {
                            let values = references[chunk..<min(references.count, chunk + 100)].joined(separator: ",")
                            let inner = try SearchQuery.parse(
                                [(parameter.code, values), ("_count", String(SearchQuery.maxLinked))], type: include.source)
                            for resource in try await backend.search(caller, type: include.source, query: inner).page.resources
                            where seen.insert("\(resource.type)/\(resource.id)").inserted {
                                next.append(resource)
                            }
                        }
                    }
                    continue
                }
                for source in sources {
                    guard case .object(let object)? = try? JSONParser.parse(source.json) else { continue }
                    for parameter in include.parameters {
                        for reference in SearchClause.references(of: object, parameter) {
                            let parts = reference.split(separator: "/").map(String.init)
                            if let target = include.target, parts[0] != target { continue }
                            guard seen.insert(reference).inserted else { continue }
                            do {
                                let answer = try await backend.read(caller, type: parts[0], id: parts[1])
                                if !answer.resource.deleted { next.append(answer.resource) }
                            } catch let error as FHIRError where [403, 404, 410].contains(error.status) {
                                continue
                            }
                        }
                    }
                }
            }
            added += next
            guard added.count <= SearchQuery.maxLinked else { throw Self.tooManyLinked("_include/_revinclude") }
            frontier = next
            if next.isEmpty { break }
        }
        return added
    }
}
