import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation

/// FHIR search at the edge's sealed store (issue 15): a patient-scoped vital-signs query with
/// a date range, a sort and a page; a name and birth-date search over every patient; and the
/// two searches a `_revinclude` of Provenance makes. The store is filled through the stream's
/// apply path (sealing, index terms), as an edge fills it.
func benchSearch(size benchSize: BenchSize, total chosen: Int? = nil) async throws -> [String] {
    let total = chosen ?? benchSize.pick(full: 1_000_000, quick: 100_000, smoke: 3_000)
    let hotObservations = benchSize == .smoke ? 200 : 2_000
    let patients = max(130, total / 100)
    let provenances = patients / 10
    let others = total - hotObservations - patients - provenances
    let dir = makeTempDir("search")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let kek = try KeyEncryptionKey.generate()
    // The edge's default hot tier (cache.hot_bytes 64 MiB): repeated searches skip the unsealing.
    let store = try EdgeStore(path: dir + "/edge.sqlite", tenant: "bench", kek: kek, clock: SystemWallClock(), hotBytes: 64 << 20)
    let families = ["Smith", "Smythe", "Jones", "Nguyen", "Okafor", "García", "Müller", "Lee", "Ivanova", "Brown", "Patel", "Kim"]
    var lsn: Int64 = 0
    var pending: [Change] = []
    func add(_ type: String, _ id: String, _ body: String) async throws {
        lsn += 1
        let json = #"{"resourceType":"\#(type)","id":"\#(id)",\#(body)}"#
        pending.append(
            Change(
                lsn: lsn,
                resource: ResourceVersion(
                    type: type, id: id, version: 1, lastUpdated: 1_700_000_000_000 + lsn, deleted: false, json: Array(json.utf8))))
        if pending.count == 1000 {
            try await store.stream.apply(pending, checkpoint: lsn, isResident: { _ in false })
            pending.removeAll(keepingCapacity: true)
        }
    }
    func observation(_ n: Int, patient: Int) -> String {
        let vital = n % 2 == 0
        let code = vital ? "8867-4" : "2339-0"
        let day = n % 730
        let date = String(format: "%04d-%02d-%02dT%02d:00:00Z", 2023 + day / 365, day % 365 / 31 + 1, day % 31 % 28 + 1, n % 24)
        return
            #""status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"\#(vital ? "vital-signs" : "laboratory")"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"\#(code)"}]},"subject":{"reference":"Patient/p\#(patient)"},"effectiveDateTime":"\#(date)","valueQuantity":{"value":\#(60 + n % 50),"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}"#
    }
    let fillStart = ContinuousClock.now
    for p in 0..<patients {
        let birth = String(format: "%04d-%02d-%02d", 1930 + p % 80, p % 12 + 1, p % 28 + 1)
        try await add(
            "Patient", "p\(p)",
            #""name":[{"family":"\#(families[p % families.count])","given":["G\#(p)"]}],"gender":"\#(p % 2 == 0 ? "female" : "male")","birthDate":"\#(birth)","identifier":[{"system":"urn:mrn","value":"MRN-\#(p)"}]"#
        )
    }
    for k in 0..<provenances {
        try await add(
            "Provenance", "prov\(k)",
            #""target":[{"reference":"Patient/p\#(k * 10)"}],"recorded":"2024-01-01T00:00:00Z","agent":[{"who":{"reference":"Practitioner/pr1"}}]"#
        )
    }
    for n in 0..<hotObservations { try await add("Observation", "hot-\(n)", observation(n, patient: 0)) }
    for n in 0..<others { try await add("Observation", "o\(n)", observation(n, patient: 1 + n % (patients - 1))) }
    if !pending.isEmpty { try await store.stream.apply(pending, checkpoint: lsn, isResident: { _ in false }) }
    let fill = milliseconds(ContinuousClock.now - fillStart) / 1000

    let runs = benchSize.pick(full: 300, quick: 300, smoke: 20)
    func time(_ label: String, expect: (SearchPage) -> Bool, _ search: () async throws -> SearchPage) async throws -> String {
        var samples: [Double] = []
        var last: SearchPage?
        for _ in 0..<runs {
            let t = ContinuousClock.now
            last = try await search()
            samples.append(milliseconds(ContinuousClock.now - t))
        }
        guard let last, expect(last) else { throw BenchError("\(label): unexpected answer (\(last?.resources.count ?? -1) resources)") }
        let first = samples[0]
        let p = Percentiles(samples)
        return "search at \(total) cached resources, \(label): "
            + String(format: "p50 %.2f ms, p99 %.2f ms (first, hot tier cold: %.2f ms)", p.p50, p.p99, first)
            + " (\(last.total ?? -1) matches)"
    }
    var lines: [String] = []
    let vitals = try SearchQuery.parse(
        [("patient", "p0"), ("category", "vital-signs"), ("date", "ge2023-06-01"), ("_sort", "-date"), ("_count", "50")],
        type: "Observation")
    lines.append(
        try await time(
            "Observation?patient=X&category=vital-signs&date=ge2023-06-01&_sort=-date&_count=50 (\(hotObservations) observations on X; target p99 < 10 ms)",
            expect: { $0.resources.count == min(50, $0.total ?? 0) && ($0.total ?? 0) > 0 }
        ) { try await store.entries.search(type: "Observation", query: vitals) })
    let names = try SearchQuery.parse([("name", "smi"), ("birthdate", "1970")], type: "Patient")
    lines.append(
        try await time("Patient?name=smi&birthdate=1970 (\(patients) patients)", expect: { ($0.total ?? 0) > 0 }) {
            try await store.entries.search(type: "Patient", query: names)
        })
    let byID = try SearchQuery.parse([("_id", "p10")], type: "Patient")
    let provenance = try SearchQuery.parse([("target", "Patient/p10"), ("_count", "1000")], type: "Provenance")
    lines.append(
        try await time("Patient?_id=X&_revinclude=Provenance:target (the two store searches)", expect: { $0.resources.count == 1 }) {
            var page = try await store.entries.search(type: "Patient", query: byID)
            page.included = try await store.entries.search(type: "Provenance", query: provenance).resources
            return page
        })
    lines.append(String(format: "search bench: %d resources filled through the stream's apply in %.0f s", total, fill))
    return lines
}
