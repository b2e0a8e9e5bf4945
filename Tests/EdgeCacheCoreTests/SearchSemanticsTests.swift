import EdgeCacheCore
import Testing

/// The R4 search rules, type by type and modifier by modifier, each with a query that must
/// match and one that must not (issue 15 item 2). Both roles answer through the same
/// ``SearchQuery/select(_:)``; the process tests show they answer alike.
@Suite struct SearchSemanticsTests {
    static func resource(_ type: String, _ id: String, _ body: String, lastUpdated: Int64 = 1_700_000_000_000) -> ResourceVersion {
        let json = body.isEmpty ? #"{"resourceType":"\#(type)","id":"\#(id)"}"# : #"{"resourceType":"\#(type)","id":"\#(id)",\#(body)}"#
        return ResourceVersion(type: type, id: id, version: 1, lastUpdated: lastUpdated, deleted: false, json: Array(json.utf8))
    }

    /// Whether the one resource matches the query string (`a=1&b=2`, already decoded).
    func hit(_ type: String, _ body: String, _ query: String) throws -> Bool {
        let parameters = query.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), parts.count == 2 ? String(parts[1]) : "")
        }
        let q = try SearchQuery.parse(parameters, type: type)
        return !q.select([Self.resource(type, "r1", body)]).resources.isEmpty
    }

    func expect(_ type: String, _ body: String, match: [String], miss: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for q in match { #expect(try hit(type, body, q), "should match: \(type)?\(q)", sourceLocation: sourceLocation) }
        for q in miss { #expect(try !hit(type, body, q), "should not match: \(type)?\(q)", sourceLocation: sourceLocation) }
    }

    @Test func stringsStartWithIgnoringCaseAndAccents() throws {
        let patient =
            #""name":[{"use":"official","family":"Müller","given":["Anna","Maria"]}],"address":[{"line":["1 Main St"],"city":"Boston","postalCode":"02115"}]"#
        try expect(
            "Patient", patient,
            match: [
                "name=muller", "name=MÜL", "name=ann", "name=maria", "family=mül", "given=anna", "address=bost", "address-city=boston",
                "address-postalcode=021", "name=xyz,mul",
            ],
            miss: ["name=nna", "name=official", "given=muller", "family=anna", "address-city=bos2", "name=muller&name=smith"])
        try expect(
            "Patient", patient,
            match: ["name:exact=Müller", "given:exact=Anna", "name:contains=ll", "name:contains=ARI", "address:contains=main"],
            miss: ["name:exact=muller", "name:exact=Mü", "name:contains=xyz"])
    }

    @Test func tokensOfCodingsIdentifiersCodesBooleansAndContactPoints() throws {
        let observation =
            #""status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Pulse"}"#
        try expect(
            "Observation", observation,
            match: [
                "code=8867-4", "code=http://loinc.org|8867-4", "code=http://loinc.org|", "code=1234,8867-4", "status=final",
                "code:text=heart", "code:text=PUL", "code:not=1234", "status:not=amended",
            ],
            miss: [
                "code=http://snomed.info/sct|8867-4", "code=|8867-4", "code=8867", "code=8867-4&code=1234", "code:text=rate",
                "code:not=8867-4", "status=preliminary", "status:not=final",
            ])
        let patient = #"""
            "active":true,"gender":"female","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:mrn","value":"123"}],"telecom":[{"system":"phone","value":"555-1234"},{"system":"email","value":"a@b.org"}]
            """#
        try expect(
            "Patient", patient,
            match: [
                "active=true", "gender=female", "identifier=123", "identifier=urn:mrn|123", "identifier=urn:mrn|", "phone=555-1234",
                "email=a@b.org",
                "telecom=555-1234", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123",
            ],
            miss: [
                "active=false", "gender=male", "identifier=urn:other|123", "identifier=|123", "email=555-1234", "phone=a@b.org",
                "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|124",
                "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|DL|123",
            ])
        // `|code`: a code without a system.
        try expect(
            "Patient", #""gender":"male""#, match: ["gender=|male"],
            miss: ["gender=|female", "gender=http://hl7.org/fhir/administrative-gender|male"])
    }

    @Test func referencesByIdTypeURLTypeModifierAndIdentifier() throws {
        let observation =
            #""subject":{"reference":"Patient/p1","identifier":{"system":"urn:mrn","value":"123"}},"performer":[{"reference":"Practitioner/d1"}]"#
        try expect(
            "Observation", observation,
            match: [
                "subject=Patient/p1", "subject=p1", "patient=p1", "patient=Patient/p1", "subject:Patient=p1", "performer=Practitioner/d1",
                "subject=https://edge.example.org/fhir/Patient/p1", "subject:identifier=urn:mrn|123", "subject:identifier=123",
                "subject=p2,p1",
            ],
            miss: [
                "subject=Patient/p2", "patient=p2", "subject:Group=p1", "performer=Organization/d1", "subject:identifier=urn:mrn|124",
                "subject=Patient/p1&subject=Patient/p2",
            ])
        // `patient` is subject.where(resolve() is Patient): a Group subject is not a patient.
        try expect(
            "Observation", #""subject":{"reference":"Group/p1"}"#, match: ["subject=p1", "subject:Group=p1"],
            miss: ["patient=p1", "subject:Patient=p1"])
        // Coverage's patient is its beneficiary (the R4 expression, not a field called patient).
        try expect(
            "Coverage", #""beneficiary":{"reference":"Patient/p1"}"#, match: ["patient=p1", "beneficiary=Patient/p1"], miss: ["patient=p2"])
    }

    @Test func datesCompareRangesAtEveryPrecisionWithEveryPrefix() throws {
        let observation = #""effectiveDateTime":"2024-03-15T10:00:00Z""#
        try expect(
            "Observation", observation,
            match: [
                "date=2024-03-15", "date=2024-03", "date=2024", "date=ge2024-03-15", "date=le2024-03-15", "date=lt2024-03-16",
                "date=gt2024-03-14",
                "date=sa2024-03-14", "date=eb2024-03-16", "date=ap2024-03-14", "date=ne2024-03-16", "date=2024-03-15T10:00:00Z",
                "date=ge2024-03-15T09:59:00Z&date=lt2024-03-15T10:01:00Z",
            ],
            miss: [
                "date=2024-03-16", "date=2023", "date=gt2024-03-15", "date=lt2024-03-15", "date=le2024-03-14", "date=ne2024-03-15",
                "date=sa2024-03-15",
                "date=eb2024-03-15", "date=ap2023", "date=2024-03-15T10:00:01Z",
            ])
        let encounter = #""period":{"start":"2024-01-01","end":"2024-01-10"}"#
        try expect(
            "Encounter", encounter,
            match: ["date=2024-01", "date=ge2024-01-05", "date=le2024-01-05", "date=sa2023-12-31", "date=eb2024-01-11"],
            miss: ["date=2024-01-05", "date=eb2024-01-09", "date=sa2024-01-01", "date=gt2024-01-10"])
        // An open-ended period runs for ever.
        try expect(
            "Encounter", #""period":{"start":"2024-01-01"}"#, match: ["date=gt2030", "date=ge2024-01-01"],
            miss: ["date=lt2024-01-01", "date=eb2030"])
        try expect(
            "Patient", #""birthDate":"1970-01-01""#, match: ["birthdate=1970-01-01", "birthdate=1970", "birthdate=le1970-06"],
            miss: ["birthdate=1970-01-02", "birthdate=gt1970"])
        // A Timing's events (MedicationRequest.dosageInstruction.timing.event).
        try expect(
            "MedicationRequest", #""dosageInstruction":[{"timing":{"event":["2024-05-01T08:00:00Z","2024-05-02T08:00:00Z"]}}]"#,
            match: ["date=2024-05-02"], miss: ["date=2024-05-03"])
    }

    @Test func quantitiesAndNumbersWithPrecisionUnitsAndPrefixes() throws {
        let observation =
            #""valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"component":[{"code":{"text":"x"},"valueQuantity":{"value":120.5,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]"#
        try expect(
            "Observation", observation,
            match: [
                "value-quantity=72", "value-quantity=7.2e1", "value-quantity=gt70", "value-quantity=ge72", "value-quantity=le72",
                "value-quantity=ap75",
                "value-quantity=72|http://unitsofmeasure.org|/min", "value-quantity=72||/min", "value-quantity=72||beats/minute",
                "component-value-quantity=120.5", "component-value-quantity=gt120|http://unitsofmeasure.org|mm[Hg]", "value-quantity=ne73",
            ],
            miss: [
                "value-quantity=72.4", "value-quantity=lt70", "value-quantity=le71", "value-quantity=ap90",
                "value-quantity=72|http://unitsofmeasure.org|kg",
                "value-quantity=ne72", "component-value-quantity=120", "value-quantity=gt72",
            ])
        // Numbers carry their precision: 100 is [99.5, 100.5), 100.0 is [99.95, 100.05).
        let hundred = try #require(SearchNumber("100"))
        let exact = try #require(SearchNumber("100.0"))
        let target = try #require(SearchNumber("100.3"))
        #expect(hundred.halfStep == 0.5 && exact.halfStep == 0.05)
        #expect(try !hit("Observation", #""valueQuantity":{"value":100.3}"#, "value-quantity=100.0"))
        #expect(try hit("Observation", #""valueQuantity":{"value":100.3}"#, "value-quantity=100"))
        #expect(target > hundred)
    }

    @Test func urisTagsProfilesAndMissing() throws {
        let patient =
            #""meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],"tag":[{"system":"urn:t","code":"vip"}]}"#
        try expect(
            "Patient", patient,
            match: [
                "_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient", "_tag=vip", "_tag=urn:t|vip",
                "birthdate:missing=true", "_tag:missing=false",
            ],
            miss: [
                "_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core", "_tag=urn:other|vip", "birthdate:missing=false",
                "_tag:missing=true",
            ])
        try expect("Device", #""url":"http://d.example/1""#, match: ["url=http://d.example/1"], miss: ["url=http://d.example"])
        // A value with an escaped comma is one value.
        try expect("Patient", #""name":[{"family":"a,b"}]"#, match: [#"name:exact=a\,b"#], miss: ["name:exact=a,b"])
    }

    @Test func sortsByDateStringAndIdWithMissingValuesLast() throws {
        let resources = [
            Self.resource("Observation", "o1", #""effectiveDateTime":"2024-01-02""#, lastUpdated: 3),
            Self.resource("Observation", "o2", #""effectiveDateTime":"2024-01-05""#, lastUpdated: 2),
            Self.resource("Observation", "o3", "", lastUpdated: 1),
            Self.resource("Observation", "o4", #""effectivePeriod":{"start":"2023-12-01","end":"2024-02-01"}"#, lastUpdated: 4),
        ]
        func order(_ sort: String, type: String = "Observation", _ rs: [ResourceVersion]) throws -> [String] {
            try SearchQuery.parse([("_sort", sort)], type: type).select(rs).resources.map(\.id)
        }
        #expect(try order("date", resources) == ["o4", "o1", "o2", "o3"])
        #expect(try order("-date", resources) == ["o4", "o2", "o1", "o3"])
        #expect(try order("-_id", resources) == ["o4", "o3", "o2", "o1"])
        #expect(try order("_lastUpdated", resources) == ["o3", "o2", "o1", "o4"])
        let patients = [
            Self.resource("Patient", "a", #""name":[{"family":"Zed","given":["Amy"]}]"#),
            Self.resource("Patient", "b", #""name":[{"family":"Ávila","given":["Bo"]}]"#),
            Self.resource("Patient", "c", #""name":[{"family":"Zed","given":["Al"]}]"#),
        ]
        #expect(try order("family,given", type: "Patient", patients) == ["b", "c", "a"])
        #expect(try order("-family,-given", type: "Patient", patients) == ["a", "c", "b"])
        // Paging is cut after the order, and the total counts every match.
        var q = try SearchQuery.parse([("_sort", "-date"), ("_count", "2"), ("_offset", "1")], type: "Observation")
        var page = q.select(resources)
        #expect(page.resources.map(\.id) == ["o2", "o1"] && page.total == 4 && page.hasMore)
        q = try SearchQuery.parse([("_sort", "-date"), ("_count", "2"), ("_offset", "2")], type: "Observation")
        page = q.select(resources)
        #expect(page.resources.map(\.id) == ["o1", "o3"] && !page.hasMore)
    }

    @Test func indexTermsOfAResourceCoverEveryNarrowableClauseThatMatchesIt() throws {
        // A term only narrows: for each query that matches, the resource holds one term of
        // every group the query narrows by (or a store would miss it).
        let body = #"""
            "status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"identifier":[{"system":"urn:s","value":"v"}],"meta":{"profile":["urn:p"]},"valueString":"Steady"
            """#
        let resource = Self.resource("Observation", "r1", body)
        guard case .object(let object) = try JSONParser.parse(resource.json) else { Issue.record("not an object"); return }
        let terms = Set(SearchTerms.extract(from: object, type: "Observation"))
        for query in [
            "status=final", "code=8867-4", "code=http://loinc.org|8867-4", "code=http://loinc.org|", "patient=p1", "subject=Patient/p1",
            "identifier=urn:s|v", "_profile=urn:p", "value-string=ste", "value-string:exact=Steady",
        ] {
            let parts = query.split(separator: "=", maxSplits: 1).map(String.init)
            let q = try SearchQuery.parse([(parts[0], parts[1])], type: "Observation")
            #expect(!q.select([resource]).resources.isEmpty, "\(query)")
            for group in q.indexGroups { #expect(!terms.isDisjoint(with: group), "\(query): \(group) not in the terms") }
        }
    }
}
