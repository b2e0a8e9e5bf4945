import Foundation

/// String search values: what a string parameter reads in an element, and the normal form
/// (case and accents folded) that starts-with and `:contains` compare.
package enum SearchText {
    /// Lowercased, accents removed (canonical decomposition without combining marks).
    package static func normalize(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return text.lowercased() }
        var scalars = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars
        where scalar.properties.generalCategory != .nonspacingMark {
            scalars.append(scalar)
        }
        return String(scalars).lowercased()
    }

    /// The strings of an element: a string itself; a HumanName's family, given, prefix, suffix
    /// and text; an Address's line, city, district, state, postal code, country and text; a
    /// CodeableConcept's text; any other object's string members one level down.
    package static func strings(of element: JSONValue) -> [String] {
        switch element {
        case .string(let s): return [s]
        case .object(let o):
            var found: [String] = []
            for member in o.members {
                switch member.value {
                case .string(let s) where member.key != "use" && member.key != "type" && member.key != "system": found.append(s)
                case .array(let items): found += items.compactMap(\.stringValue)
                default: continue
                }
            }
            return found
        default: return []
        }
    }
}

/// Token search values: the codings an element holds.
package enum SearchTokens {
    package struct Coding: Sendable, Equatable {
        package var system: String?
        package var code: String
    }

    /// A CodeableConcept's codings, a Coding, an Identifier (system, value), a ContactPoint
    /// (its value), a code, string, boolean or id.
    package static func codings(of element: JSONValue) -> [Coding] {
        switch element {
        case .string(let s): return [Coding(system: nil, code: s)]
        case .bool(let b): return [Coding(system: nil, code: b ? "true" : "false")]
        case .object(let o):
            if let codings = o["coding"]?.arrayValue {
                return codings.compactMap { c in
                    c.objectValue.flatMap { o in o["code"]?.stringValue.map { Coding(system: o["system"]?.stringValue, code: $0) } }
                }
            }
            if let code = o["code"]?.stringValue { return [Coding(system: o["system"]?.stringValue, code: code)] }
            // Identifier (system|value) or ContactPoint (value; its system is a kind, not a namespace).
            if let value = o["value"]?.stringValue {
                let isContactPoint = ["phone", "fax", "email", "pager", "url", "sms", "other"].contains(o["system"]?.stringValue ?? "")
                return [Coding(system: isContactPoint ? nil : o["system"]?.stringValue, code: value)]
            }
            return []
        default: return []
        }
    }

    /// The texts `:text` searches: a CodeableConcept's text and its codings' displays, a
    /// Coding's display, an Identifier's type text.
    package static func texts(of element: JSONValue) -> [String] {
        guard let o = element.objectValue else { return [] }
        var found: [String] = []
        if let text = o["text"]?.stringValue { found.append(text) }
        if let display = o["display"]?.stringValue { found.append(display) }
        for coding in o["coding"]?.arrayValue ?? [] {
            if let display = coding.objectValue?["display"]?.stringValue { found.append(display) }
        }
        if let typeText = o["type"]?.objectValue?["text"]?.stringValue { found.append(typeText) }
        return found
    }
}

/// Date search values and the R4 prefix rules over ranges.
package enum SearchDates {
    /// The time ranges an element denotes: a date, dateTime or instant at its precision; a
    /// Period (an open end is unbounded); a Timing's events.
    package static func ranges(of element: JSONValue) -> [FHIRTime.Range] {
        switch element {
        case .string(let s): return FHIRTime.parseRange(s).map { [$0] } ?? []
        case .object(let o):
            if let events = o["event"]?.arrayValue { return events.compactMap { $0.stringValue.flatMap(FHIRTime.parseRange) } }
            let start = o["start"]?.stringValue.flatMap(FHIRTime.parseRange)?.start
            let end = o["end"]?.stringValue.flatMap(FHIRTime.parseRange)?.end
            guard start != nil || end != nil else { return [] }
            return [FHIRTime.Range(start: start ?? Int64.min, end: end ?? Int64.max)]
        default: return []
        }
    }

    /// R4 3.1.1.4.2: the search value's range `search` against a target range.
    package static func compare(_ prefix: SearchClause.Prefix, search s: FHIRTime.Range, target t: FHIRTime.Range) -> Bool {
        let within = s.start <= t.start && t.end <= s.end
        switch prefix {
        case .eq: return within
        case .ne: return !within
        case .gt: return t.end > s.end
        case .lt: return t.start < s.start
        case .ge: return t.end > s.end || within
        case .le: return t.start < s.start || within
        case .sa: return t.start >= s.end
        case .eb: return t.end <= s.start
        case .ap:
            // Approximately: overlapping the value widened by a tenth of its span, at least a day.
            let widen = max((s.end - s.start) / 10, 86_400_000)
            return t.start < s.end &+ widen && t.end > s.start &- widen
        }
    }

    /// The value a date sorts by: the start ascending, the end descending (R4 3.1.1.4.2).
    package static func sortKey(_ ranges: [FHIRTime.Range], descending: Bool) -> Int64? {
        descending ? ranges.map(\.end).max() : ranges.map(\.start).min()
    }
}

/// A number or quantity value with its implied precision (`100` is 99.5 up to 100.5).
package struct SearchNumber: Sendable, Equatable, Comparable {
    package var value: Double
    /// Half the unit of the last significant digit.
    package var halfStep: Double

    package init?(_ text: String) {
        guard !text.isEmpty, text.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E" }),
            let v = Double(text), v.isFinite
        else { return nil }
        value = v
        let mantissa = text.split(whereSeparator: { $0 == "e" || $0 == "E" }).first.map(String.init) ?? text
        let decimals = mantissa.split(separator: ".", maxSplits: 1).dropFirst().first?.count ?? 0
        let exponent = text.split(whereSeparator: { $0 == "e" || $0 == "E" }).dropFirst().first.flatMap { Int($0) } ?? 0
        halfStep = 0.5 * pow(10, Double(exponent - decimals))
    }

    /// A JSON number element.
    init?(_ element: JSONValue) {
        guard case .number(let text) = element else { return nil }
        self.init(text)
    }

    package static func < (a: SearchNumber, b: SearchNumber) -> Bool { a.value < b.value }

    /// The R4 number rules: `eq` is within the search value's precision, the others compare.
    func compare(_ prefix: SearchClause.Prefix, target: SearchNumber) -> Bool {
        let low = value - halfStep
        let high = value + halfStep
        let t = target.value
        switch prefix {
        case .eq: return t >= low && t < high
        case .ne: return !(t >= low && t < high)
        case .gt, .sa: return t > value
        case .lt, .eb: return t < value
        case .ge: return t >= value
        case .le: return t <= value
        case .ap: return abs(t - value) <= max(abs(value) * 0.1, halfStep)
        }
    }

    /// A Quantity's (or Age's, Duration's, …) value, system, code and unit; a Range's low and high.
    static func quantities(of element: JSONValue) -> [(value: SearchNumber, system: String?, code: String?, unit: String?)] {
        guard let o = element.objectValue else { return [] }
        if o["low"] != nil || o["high"] != nil {
            return ["low", "high"].flatMap { o[$0].map(quantities(of:)) ?? [] }
        }
        guard let number = o["value"].flatMap(SearchNumber.init) else { return [] }
        return [(number, o["system"]?.stringValue, o["code"]?.stringValue, o["unit"]?.stringValue)]
    }
}
