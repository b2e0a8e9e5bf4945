import Foundation

/// One search parameter of a query, parsed against the R4 definition it names: its modifier
/// and its comma-separated values (any of which may match; repeating the parameter ANDs
/// clauses). ``matches(_:)`` decides a resource exactly, per the R4 search rules; index terms
/// (``indexTerms``) only narrow the rows a store reads before it asks.
package struct SearchClause: Sendable {
    package enum Modifier: Sendable, Equatable {
        case missing(Bool)
        case exact, contains, not, text, ofType, identifier
        /// A reference restricted to one resource type (`subject:Patient`).
        case type(String)
    }

    /// A comparison prefix of a date, number or quantity value.
    package enum Prefix: String, Sendable, CaseIterable {
        case eq, ne, gt, lt, ge, le, sa, eb, ap
    }

    package enum Value: Sendable {
        /// `system|code`: `system` nil means any system, "" means none; an empty `code` with a
        /// system means any code of that system.
        case token(system: String?, code: String)
        /// `:of-type`: identifier type `system|code` and the identifier's value.
        case ofType(system: String, code: String, value: String)
        /// A string, normalized (case and accents folded) unless the modifier is `:exact`.
        case string(String)
        /// A reference: `Type/id` or an `id` of any target type.
        case reference(type: String?, id: String)
        case date(Prefix, FHIRTime.Range)
        case number(Prefix, SearchNumber)
        case quantity(Prefix, SearchNumber, system: String?, code: String?)
        case uri(String)
    }

    /// The parameter as written (with its modifier), for links and messages.
    package let name: String
    package let parameter: SearchParameters.Parameter
    package let modifier: Modifier?
    package let values: [Value]

    /// Parses `name[:modifier]=value[,value…]` for a resource type. The parameter must be in
    /// the table; unknown modifiers and malformed values are 400s naming them.
    package init(
        name: String, code: String, modifier raw: String?, value: String, parameter: SearchParameters.Parameter
    )
        throws(FHIRError)
    {
        self.name = name
        self.parameter = parameter
        let kind = parameter.kind
        var modifier: Modifier?
        if let raw {
            switch (raw, kind) {
            case ("missing", _):
                guard value == "true" || value == "false" else { throw .invalid("\(name) must be true or false") }
                modifier = .missing(value == "true")
            case ("exact", .string): modifier = .exact
            case ("contains", .string): modifier = .contains
            case ("not", .token): modifier = .not
            case ("text", .token): modifier = .text
            case ("of-type", .token) where code == "identifier": modifier = .ofType
            case ("identifier", .reference): modifier = .identifier
            case (let type, .reference) where ResourceTypes.all.contains(type):
                guard parameter.targets.isEmpty || parameter.targets.contains(type) else {
                    throw .invalid("\(code) cannot refer to \(type); its targets are \(parameter.targets.joined(separator: ", "))")
                }
                modifier = .type(type)
            default:
                throw FHIRError(
                    status: 400, code: "not-supported",
                    "The search modifier in '\(name.prefix(80))' is not supported: ':\(raw.prefix(40))' does not apply to the \(kind.rawValue) parameter '\(code)'"
                )
            }
        }
        self.modifier = modifier
        if case .missing = modifier {
            values = []
            return
        }
        let parts = Self.splitValues(value)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw .invalid("\(name) needs a value") }
        var parsed: [Value] = []
        for part in parts {
            parsed.append(try Self.parseValue(part, kind: kind, modifier: modifier, name: name, soleTarget: parameter.soleTarget))
        }
        values = parsed
    }

    /// Splits on commas not escaped with a backslash, and unescapes `\,`, `\|`, `\$`, `\\`.
    static func splitValues(_ value: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for c in value {
            if escaped {
                current.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "," {
                parts.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        return parts
    }

    private static func parseValue(
        _ text: String, kind: SearchParameters.Parameter.Kind, modifier: Modifier?, name: String, soleTarget: String?
    )
        throws(FHIRError) -> Value
    {
        switch kind {
        case .token:
            if modifier == .text { return .string(SearchText.normalize(text)) }
            let bar = text.firstIndex(of: "|")
            if modifier == .ofType {
                let pieces = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                guard pieces.count == 3, !pieces[1].isEmpty, !pieces[2].isEmpty else {
                    throw .invalid("\(name) must be type-system|type-code|value")
                }
                return .ofType(system: pieces[0], code: pieces[1], value: pieces[2])
            }
            guard let bar else { return .token(system: nil, code: text) }
            let system = String(text[..<bar])
            let code = String(text[text.index(after: bar)...])
            guard !(system.isEmpty && code.isEmpty) else { throw .invalid("\(name) must be code, system|code, |code or system|") }
            return .token(system: system, code: code)
        case .string:
            return .string(modifier == .exact ? text : SearchText.normalize(text))
        case .reference:
            if modifier == .identifier {
                guard let bar = text.firstIndex(of: "|") else { return .token(system: nil, code: text) }
                return .token(system: String(text[..<bar]), code: String(text[text.index(after: bar)...]))
            }
            if text.contains("/") {
                guard let normalized = SearchTerms.normalizeReference(text) else {
                    throw .invalid("\(name) must be a reference such as Patient/123 or an id")
                }
                let pieces = normalized.split(separator: "/")
                if case .type(let type) = modifier, type != pieces[0] {
                    throw .invalid("\(name) names \(type) but the value is a \(pieces[0]) reference")
                }
                return .reference(type: String(pieces[0]), id: String(pieces[1]))
            }
            guard ResourceID.isValid(text) else { throw .invalid("\(name) must be a reference such as Patient/123 or an id") }
            if case .type(let type) = modifier { return .reference(type: type, id: text) }
            // An id alone: of the one type the parameter may point at, else of any type.
            return .reference(type: soleTarget, id: text)
        case .date:
            let (prefix, rest) = Self.prefix(text)
            guard let range = FHIRTime.parseRange(rest) else {
                throw .invalid(
                    "\(name): '\(text.prefix(40))' is not a FHIR date or dateTime (with an optional eq/ne/gt/lt/ge/le/sa/eb/ap prefix)")
            }
            return .date(prefix, range)
        case .number:
            let (prefix, rest) = Self.prefix(text)
            guard let number = SearchNumber(rest) else { throw .invalid("\(name): '\(text.prefix(40))' is not a number") }
            return .number(prefix, number)
        case .quantity:
            let (prefix, rest) = Self.prefix(text)
            let pieces = rest.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard pieces.count == 1 || pieces.count == 3, let number = SearchNumber(pieces[0]) else {
                throw .invalid("\(name): '\(text.prefix(40))' must be [prefix]number or [prefix]number|system|code")
            }
            if pieces.count == 1 { return .quantity(prefix, number, system: nil, code: nil) }
            return .quantity(
                prefix, number, system: pieces[1].isEmpty ? nil : pieces[1], code: pieces[2].isEmpty ? nil : pieces[2])
        case .uri:
            return .uri(text)
        }
    }

    /// A leading comparison prefix, if the text has one followed by a digit.
    private static func prefix(_ text: String) -> (Prefix, String) {
        guard text.count > 2, let p = Prefix(rawValue: String(text.prefix(2))),
            text.dropFirst(2).first?.isNumber == true || text.dropFirst(2).first == "-"
        else { return (.eq, text) }
        return (p, String(text.dropFirst(2)))
    }

    // MARK: Matching

    /// Whether `object` (a resource of the clause's type) matches.
    package func matches(_ object: JSONObject) -> Bool { matches(elements: elements(in: object)) }

    /// The elements of `object` the clause's parameter reads (with the choice type of each).
    package func elements(in object: JSONObject) -> [(value: JSONValue, type: String?)] {
        if parameter.paths.count == 1, parameter.paths[0].target == nil { return parameter.paths[0].values(in: object) }
        return parameter.paths.flatMap { path in
            path.values(in: object).filter { Self.pointsAt(path.target, $0.value) }
        }
    }

    /// Whether a resource whose elements for this parameter are `found` (``elements(in:)``) matches.
    package func matches(elements found: [(value: JSONValue, type: String?)]) -> Bool {
        if case .missing(let missing) = modifier { return found.isEmpty == missing }
        if modifier == .not {
            // `:not`: no element has the code (a resource without the element matches).
            return !values.contains { value in found.contains { Self.match(value, $0.value, $0.type, kind: parameter.kind, modifier: nil) }
            }
        }
        return values.contains { value in found.contains { Self.match(value, $0.value, $0.type, kind: parameter.kind, modifier: modifier) }
        }
    }

    /// A path's `@Type` restriction: the reference must point at that type.
    private static func pointsAt(_ target: String?, _ value: JSONValue) -> Bool {
        guard let target else { return true }
        guard let reference = value.objectValue?["reference"]?.stringValue,
            let normalized = SearchTerms.normalizeReference(reference)
        else { return false }
        return normalized.hasPrefix(target + "/")
    }

    private static func match(
        _ value: Value, _ element: JSONValue, _ type: String?, kind: SearchParameters.Parameter.Kind, modifier: Modifier?
    )
        -> Bool
    {
        switch value {
        case .token(let system, let code):
            if modifier == .identifier {
                guard let identifier = element.objectValue?["identifier"]?.objectValue else { return false }
                return SearchTokens.codings(of: .object(identifier)).contains { tokenMatches(system, code, $0) }
            }
            return SearchTokens.codings(of: element).contains { tokenMatches(system, code, $0) }
        case .ofType(let system, let code, let identifierValue):
            guard let o = element.objectValue, o["value"]?.stringValue == identifierValue, let typeConcept = o["type"] else { return false }
            return SearchTokens.codings(of: typeConcept).contains { $0.system == system && $0.code == code }
        case .string(let text):
            if kind == .token {
                // `:text`: the display text of a CodeableConcept or its codings, starts-with.
                return SearchTokens.texts(of: element).contains { SearchText.normalize($0).hasPrefix(text) }
            }
            let strings = SearchText.strings(of: element)
            switch modifier {
            case .exact: return strings.contains(text)
            case .contains: return strings.contains { SearchText.normalize($0).contains(text) }
            default: return strings.contains { SearchText.normalize($0).hasPrefix(text) }
            }
        case .reference(let type, let id):
            guard let reference = element.objectValue?["reference"]?.stringValue,
                let normalized = SearchTerms.normalizeReference(reference)
            else { return false }
            if let type { return normalized == "\(type)/\(id)" }
            return normalized.hasSuffix("/\(id)")
        case .date(let prefix, let search):
            return SearchDates.ranges(of: element).contains { SearchDates.compare(prefix, search: search, target: $0) }
        case .number(let prefix, let search):
            guard let target = SearchNumber(element) else { return false }
            return search.compare(prefix, target: target)
        case .quantity(let prefix, let search, let system, let code):
            return SearchNumber.quantities(of: element).contains { quantity in
                if let system, quantity.system != system { return false }
                if let code, quantity.code != code && quantity.unit != code { return false }
                return search.compare(prefix, target: quantity.value)
            }
        case .uri(let uri):
            return element.stringValue == uri
        }
    }

    private static func tokenMatches(_ system: String?, _ code: String, _ coding: SearchTokens.Coding) -> Bool {
        switch system {
        case nil: return coding.code == code
        case ""?: return coding.system == nil && coding.code == code
        case let s?: return coding.system == s && (code.isEmpty || coding.code == code)
        }
    }

    // MARK: Index terms

    /// Whether a resource has one of ``indexTerms`` exactly when it matches, so a store that
    /// narrowed its rows by them need not decide the clause again: token `code`, `system|code`
    /// and `system|` (not `|code`: its term is that of any system) and typed references, with
    /// no modifier but `:Type`; none whose system or code holds a `|`.
    package var isExactByTerms: Bool {
        switch modifier {
        case nil, .type?: break
        default: return false
        }
        guard parameter.kind == .token || parameter.kind == .reference else { return false }
        return values.allSatisfy { value in
            switch value {
            case .token(let system, let code):
                // A `|` inside the system or code could make another coding's term the same text.
                return system != "" && !(system == nil && code.isEmpty) && !code.contains("|") && system?.contains("|") != true
            case .reference(let type, _): return type != nil
            default: return false
            }
        }
    }

    /// The index terms a store can narrow this clause by: a resource that matches has at least
    /// one of them. Nil when the clause cannot be narrowed (`:missing`, `:not`, `:contains`,
    /// `:text`, dates, numbers and quantities, strings shorter than the prefix).
    package var indexTerms: [String]? {
        if modifier != nil, modifier != .exact, modifier != .ofType {
            if case .type = modifier {} else { return nil }
        }
        var terms: [String] = []
        for value in values {
            switch value {
            case .token(let system, let code):
                terms.append(SearchTerms.token(parameter.code, system: system?.isEmpty == false ? system : nil, code: code))
            case .ofType(_, _, let identifierValue):
                terms.append(SearchTerms.token(parameter.code, system: nil, code: identifierValue))
            case .string(let text):
                guard parameter.kind == .string else { return nil }
                let key = modifier == .exact ? SearchText.normalize(text) : text
                guard let term = SearchTerms.stringPrefix(parameter.code, key) else { return nil }
                terms.append(term)
            case .reference(let type, let id):
                guard let type else { return nil }
                terms.append(SearchTerms.reference(parameter.code, "\(type)/\(id)"))
            case .uri(let uri):
                terms.append(SearchTerms.uri(parameter.code, uri))
            case .date, .number, .quantity:
                return nil
            }
        }
        return terms
    }
}
