import EdgeCacheNode
import Foundation
import Testing

extension IntegrationSuites {
    /// FHIR search as clinical apps send it, over real mutual TLS at an origin and at an edge
    /// answering from its own sealed store: the same query on the same data gets the same
    /// Bundle at both roles (issue 15).
    @Suite struct FHIRSearchTests {
        let dir = TempDir()

        /// A small ward: patients, vital signs and labs, problems, medications, encounters,
        /// practitioners and provenance, with realistic shapes (US Core style).
        static func ward() -> [(type: String, id: String, json: String)] {
            var out: [(String, String, String)] = []
            let families = ["Smith", "Smyth", "Müller", "Nguyen", "Okafor", "Smithers", "García", "Lee", "Ivanova", "Brown"]
            out.append(
                ("Practitioner", "pr1", #"{"resourceType":"Practitioner","name":[{"family":"Jones","given":["Alice"],"prefix":["Dr"]}]}"#))
            out.append(("Practitioner", "pr2", #"{"resourceType":"Practitioner","name":[{"family":"Patel","given":["Ravi"]}]}"#))
            for i in 0..<10 {
                let gender = i % 2 == 0 ? "female" : "male"
                let birth = String(format: "%04d-%02d-%02d", 1950 + i * 5, i % 12 + 1, i % 9 + 1)
                out.append(
                    (
                        "Patient", "p\(i)",
                        #"{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"MRN-\#(i)"}],"name":[{"family":"\#(families[i])","given":["Given\#(i)"]}],"gender":"\#(gender)","birthDate":"\#(birth)","generalPractitioner":[{"reference":"Practitioner/pr\#(i % 2 + 1)"}],"address":[{"city":"\#(i < 5 ? "Boston" : "Leeds")"}]}"#
                    ))
                for k in 0..<20 {
                    let vital = k % 2 == 0
                    let code =
                        vital
                        ? #"{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]}"#
                        : #"{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose"}]}"#
                    let category = vital ? "vital-signs" : "laboratory"
                    let value =
                        vital
                        ? #"{"value":\#(60 + (i * 7 + k * 3) % 50),"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}"#
                        : #"{"value":\#(4 + Double((i + k) % 30) / 10),"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}"#
                    let status = ["final", "final", "amended", "preliminary"][k % 4]
                    let date = String(format: "2024-01-%02dT%02d:00:00Z", k + 1, (i + k) % 24)
                    out.append(
                        (
                            "Observation", "o\(i)-\(k)",
                            #"{"resourceType":"Observation","status":"\#(status)","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"\#(category)"}]}],"code":\#(code),"subject":{"reference":"Patient/p\#(i)"},"effectiveDateTime":"\#(date)","valueQuantity":\#(value),"performer":[{"reference":"Practitioner/pr1"}]}"#
                        ))
                }
                for (k, status) in ["active", "stopped", "completed"].enumerated() {
                    out.append(
                        (
                            "MedicationRequest", "m\(i)-\(k)",
                            #"{"resourceType":"MedicationRequest","status":"\#(status)","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"\#(197_361 + k)"}]},"subject":{"reference":"Patient/p\#(i)"},"authoredOn":"2024-02-0\#(k + 1)","requester":{"reference":"Practitioner/pr\#(k % 2 + 1)"}}"#
                        ))
                }
                for (k, (category, clinical)) in [("problem-list-item", "active"), ("encounter-diagnosis", "resolved")].enumerated() {
                    out.append(
                        (
                            "Condition", "c\(i)-\(k)",
                            #"{"resourceType":"Condition","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"\#(clinical)"}]},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"\#(category)"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"\#(38_341_003 + k)"}],"text":"Hypertension"},"subject":{"reference":"Patient/p\#(i)"},"onsetDateTime":"20\#(10 + i)-06-01"}"#
                        ))
                }
                out.append(
                    (
                        "Encounter", "e\(i)",
                        #"{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p\#(i)"},"period":{"start":"2024-02-\#(String(format: "%02d", i + 1))T09:00:00Z","end":"2024-02-\#(String(format: "%02d", i + 1))T10:00:00Z"}}"#
                    ))
                if i % 2 == 0 {
                    out.append(
                        (
                            "Provenance", "prov\(i)",
                            #"{"resourceType":"Provenance","target":[{"reference":"Patient/p\#(i)"}],"recorded":"2024-03-01T00:00:00Z","agent":[{"who":{"reference":"Practitioner/pr1"}}]}"#
                        ))
                }
            }
            return out
        }

        /// The parts of a searchset that do not depend on which node answered: total, and each
        /// entry's `Type/id`, search mode and resource.
        static func comparable(_ bundle: [String: Any]) -> NSArray {
            let entries = (bundle["entry"] as? [[String: Any]] ?? []).map { entry -> NSDictionary in
                var e = entry
                if let full = e["fullUrl"] as? String { e["fullUrl"] = full.split(separator: "/").suffix(2).joined(separator: "/") }
                return e as NSDictionary
            }
            return [bundle["total"] ?? NSNull(), entries] as NSArray
        }

        @Test func theEdgeAndTheOriginGiveTheSameBundleForEveryKindOfSearch() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            let ward = Self.ward()
            for r in ward {
                #expect(try await client.put("\(originAPI)/\(r.type)/\(r.id)", r.json).status == 201, "\(r.type)/\(r.id)")
            }
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            // Caught up: the edge answers Observation searches from its own store.
            #expect(
                try await eventually(20) {
                    let r = try await client.get("\(edgeAPI)/Observation?_count=0")
                    return r.json["total"] as? Int == 200 && r.header("Cache-Status")?.contains("hit") == true
                })

            let queries: [(String, (([String: Any]) -> Bool))] = [
                (
                    "Observation?patient=p1&category=vital-signs&date=ge2024-01-10&_sort=-date&_count=5",
                    { b in Self.ids(b) == ["o1-18", "o1-16", "o1-14", "o1-12", "o1-10"] && b["total"] as? Int == 5 }
                ),
                (
                    "Observation?patient=p1&code=http://loinc.org|8867-4&value-quantity=gt100",
                    { b in Self.ids(b).allSatisfy { $0.hasPrefix("o1-") } }
                ),
                ("Patient?name=smi&_sort=_id", { b in Self.ids(b) == ["p0", "p5"] }),
                ("Patient?name=smi&birthdate=ge1960", { b in Self.ids(b) == ["p5"] }),
                ("Patient?family:exact=M%C3%BCller", { b in Self.ids(b) == ["p2"] }),
                ("Patient?family=muller", { b in Self.ids(b) == ["p2"] }),
                ("Patient?name:contains=ay", { b in Self.ids(b).isEmpty }),
                ("Patient?identifier=urn:mrn|MRN-3", { b in Self.ids(b) == ["p3"] }),
                ("MedicationRequest?patient=p2&status=active", { b in Self.ids(b) == ["m2-0"] }),
                ("MedicationRequest?patient=p2&status:not=active&_sort=_id", { b in Self.ids(b) == ["m2-1", "m2-2"] }),
                ("Condition?patient=p3&clinical-status=active&category=problem-list-item", { b in Self.ids(b) == ["c3-0"] }),
                ("Condition?onset-date=lt2012&_sort=-onset-date", { b in Self.ids(b) == ["c1-0", "c1-1", "c0-0", "c0-1"] }),
                ("Observation?subject:Patient.name=nguyen&_count=3&_sort=date", { b in Self.ids(b) == ["o3-0", "o3-1", "o3-2"] }),
                ("Observation?patient.identifier=urn:mrn|MRN-4&code=2339-0&_count=100", { b in Self.ids(b).count == 10 }),
                ("Patient?_has:Observation:patient:value-quantity=gt100&_sort=_id", { b in !Self.ids(b).isEmpty }),
                (
                    "MedicationRequest?patient=p1&_include=MedicationRequest:requester&_sort=_id",
                    { b in Self.ids(b, mode: "include").sorted() == ["pr1", "pr2"] && Self.ids(b).count == 3 }
                ),
                (
                    "Patient?_id=p2&_revinclude=Provenance:target",
                    { b in Self.ids(b) == ["p2"] && Self.ids(b, mode: "include") == ["prov2"] }
                ),
                (
                    "Provenance?_id=prov4&_include=Provenance:target&_include:iterate=Patient:general-practitioner",
                    { b in Self.ids(b, mode: "include") == ["p4", "pr1"] }
                ),
                ("Encounter?date=2024-02&patient=p4", { b in Self.ids(b) == ["e4"] }),
                ("Encounter?date=2024-02-05T09:30:00Z", { b in Self.ids(b).isEmpty }),
                ("Encounter?date=ap2024-02-05&_sort=date", { b in Self.ids(b).contains("e4") }),
                ("Practitioner?name=alice", { b in Self.ids(b) == ["pr1"] }),
                (
                    "Patient?gender=female&_sort=-birthdate,_id&_count=2&_offset=2",
                    { b in Self.ids(b) == ["p4", "p2"] && b["total"] as? Int == 5 }
                ),
                ("Patient?birthdate:missing=true", { b in Self.ids(b).isEmpty }),
                ("Patient?address-city=leeds&_sort=family", { b in Self.ids(b) == ["p9", "p6", "p8", "p7", "p5"] }),
                ("Observation?patient=p1&_count=0", { b in b["total"] as? Int == 20 && Self.ids(b).isEmpty }),
                ("Patient?_summary=count", { b in b["total"] as? Int == 10 && Self.ids(b).isEmpty }),
                // Compartment searches (issue 16): the type within one patient's compartment, links on the compartment path.
                (
                    "Patient/p1/Observation?category=vital-signs&_sort=date&_count=3",
                    { b in
                        Self.ids(b) == ["o1-0", "o1-2", "o1-4"]
                            && ((b["link"] as? [[String: Any]])?.first?["url"] as? String)?.contains("/Patient/p1/Observation?") == true
                    }
                ),
                ("Patient/p3/MedicationRequest?status=active", { b in Self.ids(b) == ["m3-0"] }),
                ("Patient/p2/Patient", { b in Self.ids(b) == ["p2"] }),
                ("Patient/p4/Provenance", { b in Self.ids(b) == ["prov4"] }),
                (
                    "Patient?_id=p2&_elements=name,birthDate",
                    { b in Self.resources(b).first.map { Set($0.keys) } == ["resourceType", "id", "meta", "name", "birthDate"] }
                ),
                (
                    "Observation?patient=p1&_summary=true&_sort=date&_count=2",
                    { b in
                        Self.resources(b).count == 2 && Self.resources(b).allSatisfy { $0["category"] == nil && $0["code"] != nil }
                    }
                ),
            ]
            for (query, check) in queries {
                let atOrigin = try await client.get("\(originAPI)/\(query)")
                let atEdge = try await client.get("\(edgeAPI)/\(query)")
                #expect(
                    atOrigin.status == 200 && atEdge.status == 200, "\(query): \(atOrigin.text.prefix(300)) / \(atEdge.text.prefix(300))")
                #expect(
                    check(atOrigin.json), "\(query) at the origin: \(Self.ids(atOrigin.json)) + \(Self.ids(atOrigin.json, mode: "include"))"
                )
                #expect(Self.comparable(atOrigin.json) == Self.comparable(atEdge.json), "\(query): the edge and the origin differ")
                // Clinical classes are replicated in full: the edge answered from its own store.
                #expect(atEdge.header("Cache-Status")?.contains("fwd=") == false, "\(query): \(atEdge.header("Cache-Status") ?? "-")")
            }
            // A type outside the Patient compartment cannot be searched as one.
            for api in [originAPI, edgeAPI] {
                let outside = try await client.get("\(api)/Patient/p1/Practitioner")
                #expect(outside.status == 400 && outside.json["resourceType"] as? String == "OperationOutcome", "\(outside.status)")
            }
            // Every page of a sorted search, followed by its links, holds each match once.
            var seen: [String] = []
            var next: String? = "\(edgeAPI)/Observation?patient=p7&_sort=-date&_count=6"
            while let url = next {
                let page = try await client.get(url)
                seen += Self.ids(page.json)
                next = (page.json["link"] as? [[String: Any]])?.first { $0["relation"] as? String == "next" }?["url"] as? String
            }
            #expect(seen.count == 20 && Set(seen).count == 20)
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        /// Writes queued at a disconnected edge show in its searches as they do in reads: an
        /// update that no longer matches drops out, one that still matches shows as it will be
        /// (tagged as queued), a queued create that matches joins, a queued delete leaves; totals
        /// and pages count them.
        @Test func queuedWritesShowInSearchesAtADisconnectedEdge() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let (api, peer) = (freePort(), freePort())
            let originConfig = try pair.writeOrigin(apiPort: api, peerPort: peer, extra: "replication: { heartbeat_ms: 200 }")
            var origin = try await InProcessNode(configPath: originConfig)
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(api)/fhir"
            for r in Self.ward() where r.type == "MedicationRequest" || r.type == "Patient" {
                #expect(try await client.put("\(originAPI)/\(r.type)/\(r.id)", r.json).status == 201)
            }
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: peer, extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(
                try await eventually(20) {
                    try await client.get("\(edgeAPI)/MedicationRequest?_count=0").json["total"] as? Int == 30
                })
            await origin.stop()
            #expect(try await eventually(5) { edge.runtime.edgeLink?.isLive == false })

            func medication(_ id: String?, status: String, patient: String = "p2") -> String {
                let idField = id.map { #""id":"\#($0)","# } ?? ""
                return
                    #"{"resourceType":"MedicationRequest",\#(idField)"status":"\#(status)","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1000"}]},"subject":{"reference":"Patient/\#(patient)"},"authoredOn":"2024-03-01"}"#
            }
            // m2-0 stopped (no longer active), m2-1 restarted (now active), m2-2 deleted, one
            // created for p2 and one for p3 (another patient).
            #expect(try await client.put("\(edgeAPI)/MedicationRequest/m2-0", medication("m2-0", status: "stopped")).status == 202)
            #expect(try await client.put("\(edgeAPI)/MedicationRequest/m2-1", medication("m2-1", status: "active")).status == 202)
            #expect(try await client.delete("\(edgeAPI)/MedicationRequest/m2-2").status == 202)
            let created = try await client.post("\(edgeAPI)/MedicationRequest", medication(nil, status: "active"))
            #expect(created.status == 202)
            let newID = try #require(created.json["id"] as? String)
            #expect(try await client.post("\(edgeAPI)/MedicationRequest", medication(nil, status: "active", patient: "p3")).status == 202)

            let active = try await client.get("\(edgeAPI)/MedicationRequest?patient=p2&status=active&_sort=_id")
            #expect(active.status == 200)
            #expect(Self.ids(active.json) == [newID, "m2-1"].sorted(), "\(Self.ids(active.json))")
            #expect(active.json["total"] as? Int == 2)
            let tags = ((active.json["entry"] as? [[String: Any]])?.first?["resource"] as? [String: Any]).flatMap {
                ($0["meta"] as? [String: Any])?["tag"] as? [[String: Any]]
            }
            #expect(tags?.contains { $0["code"] as? String == "queued" } == true, "a queued version is marked as such")
            let all = try await client.get("\(edgeAPI)/MedicationRequest?patient=p2&_sort=_id")
            #expect(Self.ids(all.json) == ([newID, "m2-0", "m2-1"]).sorted() && all.json["total"] as? Int == 3)
            let stopped = try await client.get("\(edgeAPI)/MedicationRequest?patient=p2&status=stopped")
            #expect(Self.ids(stopped.json) == ["m2-0"])
            // Paged one at a time, every match once.
            var seen: [String] = []
            var next: String? = "\(edgeAPI)/MedicationRequest?status=active&_sort=-authoredon,_id&_count=4"
            while let url = next {
                let page = try await client.get(url)
                seen += Self.ids(page.json)
                #expect(page.json["total"] as? Int == 12, "10 active, less m2-0, plus m2-1 and two created")
                next = (page.json["link"] as? [[String: Any]])?.first { $0["relation"] as? String == "next" }?["url"] as? String
            }
            #expect(seen.count == 12 && Set(seen).count == 12 && seen.prefix(3).contains(newID), "\(seen)")

            // Once replayed, the same searches give the committed versions.
            origin = try await InProcessNode(configPath: originConfig)
            #expect(
                try await eventually(15) {
                    let r = try await client.get("\(edgeAPI)/MedicationRequest?patient=p2&status=active&_sort=_id")
                    let tags = ((r.json["entry"] as? [[String: Any]]) ?? []).compactMap {
                        (($0["resource"] as? [String: Any])?["meta"] as? [String: Any])?["tag"]
                    }
                    return Self.ids(r.json) == [newID, "m2-1"].sorted() && tags.isEmpty
                })
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        /// Following a search's `next` links gives every resource that matched when the search
        /// began exactly once, though resources are updated (moving them in the order), created
        /// and deleted between pages; at both roles. A page link is the caller's only.
        @Test func pagesStayStableWhileDataChanges() async throws {
            let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
            let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: "replication: { heartbeat_ms: 200 }"))
            let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
            let originAPI = "https://127.0.0.1:\(origin.port("api"))/fhir"
            let observations = Self.ward().filter { $0.type == "Observation" && $0.id.hasPrefix("o7-") }
            for r in observations {
                #expect(try await client.put("\(originAPI)/\(r.type)/\(r.id)", r.json).status == 201)
            }
            let edge = try await InProcessNode(
                configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer"), extra: "replication: { heartbeat_ms: 200 }"))
            let edgeAPI = "https://127.0.0.1:\(edge.port("api"))/fhir"
            #expect(try await eventually(20) { try await client.get("\(edgeAPI)/Observation?_count=0").json["total"] as? Int == 20 })

            func nextLink(_ page: TestClient.Reply) -> String? {
                (page.json["link"] as? [[String: Any]])?.first { $0["relation"] as? String == "next" }?["url"] as? String
            }
            for api in [originAPI, edgeAPI] {
                let startIDs = Set(Self.ids(try await client.get("\(api)/Observation?patient=p7&_count=100").json))
                let first = try await client.get("\(api)/Observation?patient=p7&_sort=_lastUpdated&_count=6")
                var seen = Self.ids(first.json)
                #expect(seen.count == 6 && first.json["total"] as? Int == startIDs.count)
                // Between pages: the first resource is updated (it moves last), one not yet seen
                // is deleted, and a new match is created.
                let moved = seen[0]
                let body = try #require(observations.first { $0.id.hasPrefix("o7-") }).json
                #expect(try await client.put("\(originAPI)/Observation/\(moved)", body).status == 200)
                let gone = try #require(startIDs.sorted().first { !seen.contains($0) })
                #expect(try await client.delete("\(originAPI)/Observation/\(gone)").status == 204)
                #expect(try await client.post("\(originAPI)/Observation", body).status == 201)
                if api == edgeAPI {
                    // The change stream has brought all three to the edge.
                    #expect(
                        try await eventually(10) {
                            let listed = try await client.get("\(edgeAPI)/Observation?patient=p7&_sort=-_lastUpdated&_count=1")
                            return Self.ids(listed.json) == [moved] || listed.json["total"] as? Int == startIDs.count
                        })
                    #expect(try await eventually(10) { try await client.get("\(edgeAPI)/Observation/\(gone)").status == 410 })
                }
                var next = nextLink(first)
                #expect(next?.contains("_snapshot=") == true)
                // Another caller cannot page through this caller's search.
                let other = try TestClient(pki: SharedPKI.main, identity: "client-b")
                #expect(try await other.get(try #require(next)).status >= 403)
                await other.shutdown()
                while let url = next {
                    let page = try await client.get(url)
                    #expect(page.status == 200 && page.json["total"] as? Int == startIDs.count)
                    seen += Self.ids(page.json)
                    next = nextLink(page)
                }
                #expect(seen.count == Set(seen).count, "\(api): no resource twice: \(seen)")
                #expect(Set(seen) == startIDs.subtracting([gone]), "\(api): none skipped, none added: \(seen)")
            }
            let expired = try await client.get("\(originAPI)/Observation?_snapshot=AAAAAAAAAAAAAAAAAAAAAA&_count=5")
            #expect(expired.status == 410 && expired.json["resourceType"] as? String == "OperationOutcome")
            await client.shutdown()
            await edge.stop()
            await origin.stop()
        }

        static func resources(_ bundle: [String: Any]) -> [[String: Any]] {
            (bundle["entry"] as? [[String: Any]] ?? []).compactMap { $0["resource"] as? [String: Any] }
        }

        static func ids(_ bundle: [String: Any], mode: String = "match") -> [String] {
            (bundle["entry"] as? [[String: Any]] ?? []).compactMap { entry in
                guard (entry["search"] as? [String: Any])?["mode"] as? String == mode else { return nil }
                return (entry["resource"] as? [String: Any])?["id"] as? String
            }
        }
    }
}
