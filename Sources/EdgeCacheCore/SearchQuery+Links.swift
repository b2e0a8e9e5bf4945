/// Searches that follow references: chains (`subject:Patient.name=smith`), reverse chains
/// (`_has:Observation:patient:code=1234`), `_include` and `_revinclude`. They need other
/// searches and reads, so the responder resolves them through the caller's backend (every
/// scope, compartment and consent rule applies to what they touch); a store never sees them.
extension SearchQuery {
    /// `ref[:Type].param[:modifier]=value`: resources whose reference `ref` points at a
    /// resource of one of `targets` that matches `param=value`.
    package struct Chain: Sendable {
        package var name: String
        package var parameter: SearchParameters.Parameter
        package var targets: [String]
        /// The parameter (with its modifier) searched on the targets.
        package var inner: String
        package var value: String
    }

    /// `_has:Type:ref:param[:modifier]=value`: resources that a `Type` matching `param=value`
    /// points at through its reference `ref`.
    package struct ReverseChain: Sendable {
        package var name: String
        package var type: String
        package var reference: SearchParameters.Parameter
        package var inner: String
        package var value: String
    }

    /// `_include=Source:ref[:Target]` (or `Source:*`), `_revinclude=Source:ref[:Target]`,
    /// either with `:iterate` (also applied, once, to what was included).
    package struct Include: Sendable {
        package var reverse: Bool
        package var iterate: Bool
        package var source: String
        package var parameters: [SearchParameters.Parameter]
        package var target: String?
    }

    /// Most resources a chain or reverse chain may resolve to, and most included resources.
    package static let maxLinked = 1000

    static func parseChain(_ rawName: String, value: String, type: String) throws(FHIRError) -> Chain {
        let dot = rawName.firstIndex(of: ".")!
        let head = rawName[..<dot]
        let inner = String(rawName[rawName.index(after: dot)...])
        let headParts = head.split(separator: ":", maxSplits: 1).map(String.init)
        guard let parameter = SearchParameters.parameter(headParts[0], of: type), parameter.kind == .reference, !inner.isEmpty,
            !inner.contains(".")
        else {
            throw FHIRError(
                status: 400, code: "not-supported",
                "The chained search '\(rawName.prefix(80))' is not supported: chains follow one reference parameter of \(type), one level deep"
            )
        }
        let innerCode = String(inner.split(separator: ":", maxSplits: 1)[0])
        var targets: [String]
        if headParts.count == 2 {
            guard ResourceTypes.all.contains(headParts[1]), parameter.targets.isEmpty || parameter.targets.contains(headParts[1]) else {
                throw .invalid("\(headParts[0]) of \(type) cannot refer to \(headParts[1].prefix(40))")
            }
            targets = [headParts[1]]
        } else if let sole = parameter.soleTarget {
            targets = [sole]
        } else {
            targets = parameter.targets.filter { SearchParameters.parameter(innerCode, of: $0) != nil }
        }
        targets = targets.filter { SearchParameters.parameter(innerCode, of: $0) != nil }
        guard !targets.isEmpty else {
            throw FHIRError(
                status: 400, code: "not-supported",
                "The chained search '\(rawName.prefix(80))' is not supported: no type \(headParts[0]) refers to has a search parameter '\(innerCode.prefix(40))'"
            )
        }
        // The chained value is checked now, so a malformed one is a 400 before anything is read.
        for target in targets { _ = try SearchQuery.parse([(inner, value)], type: target) }
        return Chain(name: rawName, parameter: parameter, targets: targets, inner: inner, value: value)
    }

    static func parseReverseChain(_ rawName: String, value: String, type: String) throws(FHIRError) -> ReverseChain {
        let parts = rawName.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, ResourceTypes.all.contains(parts[1]), let reference = SearchParameters.parameter(parts[2], of: parts[1]),
            reference.kind == .reference, reference.targets.isEmpty || reference.targets.contains(type),
            !parts[3].contains("."), !parts[3].hasPrefix("_has")
        else {
            throw FHIRError(
                status: 400, code: "not-supported",
                "The reverse chain '\(rawName.prefix(80))' is not supported: it must be _has:Type:reference:parameter, one level, with a reference of Type that can point at \(type)"
            )
        }
        _ = try SearchQuery.parse([(parts[3], value)], type: parts[1])
        return ReverseChain(name: rawName, type: parts[1], reference: reference, inner: parts[3], value: value)
    }

    static func parseInclude(_ name: String, modifier: String?, value: String) throws(FHIRError) -> Include {
        guard modifier == nil || modifier == "iterate" else {
            throw FHIRError(
                status: 400, code: "not-supported", "The modifier ':\(modifier!.prefix(40))' of \(name) is not supported; :iterate is")
        }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, ResourceTypes.all.contains(parts[0]) else {
            throw .invalid("\(name) must be SourceType:parameter or SourceType:parameter:TargetType")
        }
        var parameters: [SearchParameters.Parameter]
        if parts[1] == "*", name == "_include" {
            parameters = SearchParameters.all(of: parts[0]).filter { $0.kind == .reference }
        } else if let p = SearchParameters.parameter(parts[1], of: parts[0]), p.kind == .reference {
            parameters = [p]
        } else {
            throw FHIRError(
                status: 400, code: "not-supported",
                "\(name)=\(value.prefix(80)) is not supported: '\(parts[1].prefix(40))' is not a reference search parameter of \(parts[0])")
        }
        let target = parts.count == 3 ? parts[2] : nil
        if let target, !ResourceTypes.all.contains(target) { throw .invalid("\(name): '\(target.prefix(40))' is not a resource type") }
        return Include(
            reverse: name == "_revinclude", iterate: modifier == "iterate", source: parts[0], parameters: parameters, target: target)
    }
}

extension SearchClause {
    /// A reference clause matching any of `references` (`(type, id)`): a chain, resolved.
    package init(name: String, parameter: SearchParameters.Parameter, references: [(String, String)]) {
        self.name = name
        self.parameter = parameter
        self.modifier = nil
        self.values = references.map { .reference(type: $0.0, id: $0.1) }
    }

    /// The `Type/id` of every reference a resource holds under `parameter`.
    package static func references(of object: JSONObject, _ parameter: SearchParameters.Parameter) -> [String] {
        parameter.paths.flatMap { path in
            path.values(in: object).compactMap { value -> String? in
                guard let ref = value.value.objectValue?["reference"]?.stringValue, let normalized = SearchTerms.normalizeReference(ref)
                else { return nil }
                if let target = path.target, !normalized.hasPrefix(target + "/") { return nil }
                return normalized
            }
        }
    }
}
