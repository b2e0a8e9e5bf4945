import EdgeCacheCore
import Foundation
import Testing

@Suite struct SearchQueryTests {
    @Test func parsesSupportedParameters() throws {
        let q = try SearchQuery.parse(
            [
                ("_id", "a,b"), ("identifier", "urn:s|v"), ("patient", "p1"), ("_count", "5"), ("_offset", "10"), ("_format", "json"),
                ("_total", "accurate"), ("_sort", "-date,_id"),
            ], type: "Observation")
        #expect(q.ids == ["a", "b"])
        #expect(q.indexGroups == [["identifier|urn:s|v"], ["patient|Patient/p1"]])
        #expect(q.count == 5 && q.offset == 10)
        #expect(q.sort.map(\.code) == ["date", "_id"] && q.sort.map(\.descending) == [true, false])
        #expect(q.effectiveParameters.map(\.0) == ["_id", "identifier", "patient", "_sort"])
    }

    @Test func modifiersTheNodeDoesNotKnowAreRefusedNotDropped() throws {
        // Found by the fhirpy interop suite: `patient:not=X` used to answer X's own resources.
        for name in ["patient:not", "subject:Patient.name.family", "status:of-type", "_id:above", "code:below", "name:text"] {
            #expect(throws: FHIRError.self, "\(name)") { _ = try SearchQuery.parse([(name, "x")], type: "Observation") }
        }
        let typed = try SearchQuery.parse([("subject:Patient", "p1"), ("unknown:exact", "ignored")], type: "Observation", lenient: true)
        #expect(typed.indexGroups == [["subject|Patient/p1"]])
        #expect(typed.ignoredParameters == ["unknown:exact"])
    }

    /// A filter the node cannot apply is a 400 naming it, never a silently wider answer.
    @Test func unsupportedParametersAreRefusedUnlessLenient() throws {
        for name in [
            "made-up", "code:below", "_elements:x", "_summary:x", "_has:Observation:patient:_has:Encounter:patient:status",
            "subject.name.family",
            "_sort:x", "performer.made-up",
        ] {
            do {
                _ = try SearchQuery.parse([("patient", "p1"), (name, "x")], type: "Observation")
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.status == 400 && error.code == "not-supported" && error.diagnostics.contains("'\(name)"), "\(error)")
            }
        }
        let lenient = try SearchQuery.parse(
            [("patient", "p1"), ("made-up", "active"), ("_sort", "-performer"), ("status", "final")], type: "Observation", lenient: true)
        #expect(lenient.indexGroups == [["patient|Patient/p1"], ["status||final"]])
        #expect(lenient.ignoredParameters == ["made-up", "_sort=-performer"])
        #expect(lenient.effectiveParameters.map(\.0) == ["patient", "status"])
        // Bad values of supported parameters stay errors under lenient handling.
        #expect(throws: FHIRError.self) { try SearchQuery.parse([("_lastUpdated", "yesterday")], type: "Observation", lenient: true) }
        #expect(throws: FHIRError.self) { try SearchQuery.parse([("date", "xx2026")], type: "Observation", lenient: true) }
    }

    @Test func lastUpdatedPrefixesBecomeBounds() throws {
        let day = FHIRTime.parseRange("2026-11-22")!
        var q = try SearchQuery.parse([("_lastUpdated", "ge2026-11-22"), ("_lastUpdated", "lt2026-11-23")], type: "Patient")
        #expect(q.updatedFrom == day.start && q.updatedBefore == day.end)
        q = try SearchQuery.parse([("_lastUpdated", "gt2026-11-22")], type: "Patient")
        #expect(q.updatedFrom == day.end)
        q = try SearchQuery.parse([("_lastUpdated", "le2026-11-22")], type: "Patient")
        #expect(q.updatedBefore == day.end)
        q = try SearchQuery.parse([("_lastUpdated", "2026-11-22")], type: "Patient")
        #expect(q.updatedFrom == day.start && q.updatedBefore == day.end)
        // The other prefixes are clauses, decided on each resource.
        q = try SearchQuery.parse([("_lastUpdated", "ne2026-11-22")], type: "Patient")
        #expect(q.updatedFrom == nil && q.clauses.count == 1)
    }

    @Test(arguments: [
        ("_count", "-1"), ("_count", "x"), ("_id", "a b"), ("_lastUpdated", "yesterday"), ("patient", "Patient/a b"), ("_total", "all"),
        ("date", "2026-13-01"), ("value-quantity", "abc"), ("value-quantity", "5|x"), ("status:missing", "maybe"), ("code", ","),
        ("subject:Device", "Patient/1"),
    ])
    func rejectsMalformedValues(_ name: String, _ value: String) {
        #expect(throws: FHIRError.self) { try SearchQuery.parse([(name, value)], type: "Observation") }
    }

    @Test func countIsCapped() throws {
        #expect(try SearchQuery.parse([("_count", "100000")], type: "Patient").count == SearchQuery.maxCount)
    }
}

@Suite struct FHIRTimeTests {
    @Test func formatsInstantsAndHTTPDates() {
        #expect(FHIRTime.instant(millis: 1_795_306_530_123) == "2026-11-22T00:15:30.123Z")
        #expect(FHIRTime.httpDate(millis: 784_111_777_000) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(FHIRTime.instant(millis: 0) == "1970-01-01T00:00:00.000Z")
    }

    @Test func parsesRangesAtTheirPrecision() {
        #expect(FHIRTime.parseRange("2026")!.end - FHIRTime.parseRange("2026")!.start == 365 * 86_400_000)
        #expect(FHIRTime.parseRange("2024-02")!.end - FHIRTime.parseRange("2024-02")!.start == 29 * 86_400_000)
        let t = FHIRTime.parseRange("2026-11-22T00:15:30.123Z")!
        #expect(t.start == 1_795_306_530_123 && t.end == t.start + 1)
        #expect(FHIRTime.parseRange("2026-11-22T02:15:30+02:00")!.start == 1_795_306_530_000)
        for bad in ["", "26", "2026-13", "2026-11-32", "2026-11-22T25:00", "2026-11-22X", "2026-11-22T10:00:00.Z"] {
            #expect(FHIRTime.parseRange(bad) == nil, "\(bad)")
        }
    }

    @Test func roundTripsInstants() {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<1000 {
            let millis = Int64(rng.next() % 4_000_000_000_000)
            #expect(FHIRTime.parseRange(FHIRTime.instant(millis: millis))?.start == millis)
        }
    }
}

@Suite struct ETagTests {
    @Test func acceptsWeakQuotedAndBareForms() {
        #expect(ETag.version(from: "W/\"3\"") == 3)
        #expect(ETag.version(from: "\"3\"") == 3)
        #expect(ETag.version(from: " 3 ") == 3)
        #expect(ETag.version(from: "W/\"x\"") == nil)
        #expect(ETag.versions(fromList: "W/\"1\", 2").versions == [1, 2])
        #expect(ETag.versions(fromList: "*").any)
    }
}

/// `_summary` and `_elements` from the R4 definitions (``ElementTable``).
@Suite struct ResultShapingTests {
    static let observation = Array(
        #"{"resourceType":"Observation","id":"o1","meta":{"versionId":"2"},"text":{"status":"generated","div":"<div>x</div>"},"status":"final","category":[{"text":"vital-signs"}],"code":{"text":"BP"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":1},"note":[{"text":"n"}],"component":[{"code":{"text":"sys"},"valueQuantity":{"value":120},"interpretation":[{"text":"H"}]}]}"#
            .utf8)

    static func shaped(_ shaping: ResultShaping, _ json: [UInt8] = observation, type: String = "Observation") throws -> [String: Any] {
        let data = Foundation.Data(shaping.apply(json, type: type))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func subsetted(_ object: [String: Any]) -> Bool {
        ((object["meta"] as? [String: Any])?["tag"] as? [[String: Any]])?.contains { $0["code"] as? String == "SUBSETTED" } == true
    }

    @Test func summaryTrueKeepsTheSummaryElementsAtEveryBackboneLevel() throws {
        let o = try Self.shaped(ResultShaping(summary: .summary))
        #expect(Set(o.keys) == ["resourceType", "id", "meta", "status", "code", "subject", "valueQuantity", "component"])
        let component = try #require((o["component"] as? [[String: Any]])?.first)
        #expect(Set(component.keys) == ["code", "valueQuantity"], "interpretation is not a summary element")
        #expect(Self.subsetted(o) && (o["meta"] as? [String: Any])?["versionId"] as? String == "2")
    }

    @Test func summaryTextDataAndElements() throws {
        let text = try Self.shaped(ResultShaping(summary: .text))
        #expect(Set(text.keys) == ["resourceType", "id", "meta", "text", "status", "code"], "text and the mandatory elements")
        let data = try Self.shaped(ResultShaping(summary: .data))
        #expect(data["text"] == nil && data["note"] != nil && Self.subsetted(data))
        let elements = try Self.shaped(try ResultShaping.parse(summary: nil, elements: "value,Observation.note", type: "Observation"))
        #expect(Set(elements.keys) == ["resourceType", "id", "meta", "status", "code", "valueQuantity", "note"])
        let full = ResultShaping(summary: .full)
        #expect(full.apply(Self.observation, type: "Observation") == Self.observation, "_summary=false changes nothing")
        // A choice element by its typed name, and a primitive's extension with it.
        let patient = Array(
            #"{"resourceType":"Patient","id":"p","birthDate":"1970","_birthDate":{"id":"x"},"multipleBirthBoolean":true,"gender":"male"}"#
                .utf8)
        let p = try Self.shaped(
            try ResultShaping.parse(summary: nil, elements: "birthDate,multipleBirthBoolean", type: "Patient"), patient, type: "Patient")
        #expect(Set(p.keys) == ["resourceType", "id", "meta", "birthDate", "_birthDate", "multipleBirthBoolean"])
    }

    @Test func badShapingIsRefused() throws {
        for (summary, elements) in [("yes", nil), (nil, "nonsense"), ("true", "name")] as [(String?, String?)] {
            #expect(throws: FHIRError.self) { _ = try ResultShaping.parse(summary: summary, elements: elements, type: "Patient") }
        }
        let q = try SearchQuery.parse([("_summary", "count"), ("gender", "male")], type: "Patient")
        #expect(q.count == 0 && q.effectiveParameters.map(\.0) == ["gender"], "shaping is never forwarded as a filter")
        #expect(q.shapingParameters.map(\.0) == ["_summary"])
    }
}

/// Which clauses the index terms decide exactly (a store that narrowed by them skips deciding
/// them again), and that skipping them changes no answer.
@Suite struct ExactByTermsTests {
    @Test func onlyEqualityTokensAndTypedReferencesAreExact() throws {
        func clause(_ name: String, _ value: String, type: String = "Observation") throws -> SearchClause {
            try #require(try SearchQuery.parse([(name, value)], type: type).clauses.first)
        }
        for (name, value) in [
            ("category", "vital-signs"), ("code", "http://loinc.org|8867-4"), ("code", "http://loinc.org|"), ("patient", "p1"),
            ("subject:Patient", "p1"), ("status", "final,amended"),
        ] {
            #expect(try clause(name, value).isExactByTerms, "\(name)=\(value)")
        }
        for (name, value) in [
            ("code", "|8867-4"), ("code:not", "8867-4"), ("code:text", "heart"), ("subject", "p1"), ("date", "ge2024"),
            ("value-quantity", "gt5"), ("code", #"a\|b|c"#), ("subject:identifier", "urn:x|1"),
        ] {
            #expect(try !clause(name, value).isExactByTerms, "\(name)=\(value)")
        }
        #expect(try !clause("name", "smith", type: "Patient").isExactByTerms, "a string prefix term is not the whole string")
    }

    @Test func selectGivesTheSameAnswerWhenExactClausesAreLeftToTheTerms() throws {
        let json =
            #"{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"s","code":"vital-signs"}]}],"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-01"}"#
        let resource = ResourceVersion(type: "Observation", id: "o1", version: 1, lastUpdated: 1, deleted: false, json: Array(json.utf8))
        let q = try SearchQuery.parse([("category", "vital-signs"), ("date", "ge2024-02"), ("_sort", "-date")], type: "Observation")
        #expect(q.select([resource]).resources.map(\.id) == ["o1"])
        #expect(q.select([resource], termsDecided: true).resources.map(\.id) == ["o1"])
        // Left to the terms, the category is not looked at again (the store's index said it matched).
        let other = try SearchQuery.parse([("category", "laboratory")], type: "Observation")
        #expect(other.select([resource]).resources.isEmpty)
        #expect(other.select([resource], termsDecided: true).resources.map(\.id) == ["o1"])
    }
}
