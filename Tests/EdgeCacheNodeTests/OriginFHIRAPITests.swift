import EdgeCacheNode
import EdgeCacheStore
import Foundation
import NIOHTTP1
import Testing

/// The FHIR REST API of a real origin (in process, real mTLS, real SQLite).
@Suite(.serialized) struct OriginFHIRAPITests {
    let dir = TempDir()

    func withOrigin(extra: String = "", _ body: (InProcessNode, TestClient, String) async throws -> Void) async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin(extra: extra))
        let client = try TestClient(pki: SharedPKI.main, identity: "client-a")
        do {
            try await body(origin, client, "https://127.0.0.1:\(origin.port("api"))/fhir")
        } catch {
            await client.shutdown()
            await origin.stop()
            throw error
        }
        await client.shutdown()
        await origin.stop()
    }

    @Test func capabilityStatementUsesOnlyR4Elements() async throws {
        try await withOrigin { _, client, base in
            let reply = try await client.get(base + "/metadata")
            #expect(reply.status == 200)
            let json = reply.json
            #expect(json["resourceType"] as? String == "CapabilityStatement")
            #expect(json["fhirVersion"] as? String == "4.0.1")
            let allowed: Set<String> = [
                "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                "modifierExtension", "url", "version", "name", "title", "status", "experimental", "date", "publisher",
                "contact", "description", "useContext", "jurisdiction", "purpose", "copyright", "kind", "instantiates",
                "imports", "software", "implementation", "fhirVersion", "format", "patchFormat", "implementationGuide",
                "rest", "messaging", "document",
            ]
            #expect(Set(json.keys).isSubset(of: allowed))
            let rest = try #require((json["rest"] as? [[String: Any]])?.first)
            #expect(
                Set(rest.keys).isSubset(of: [
                    "mode", "documentation", "security", "resource", "interaction", "searchParam", "operation", "compartment", "extension",
                ]))
            let resource = try #require((rest["resource"] as? [[String: Any]])?.first)
            #expect(
                Set(resource.keys).isSubset(of: [
                    "type", "profile", "supportedProfile", "documentation", "interaction", "versioning", "readHistory",
                    "updateCreate", "conditionalCreate", "conditionalRead", "conditionalUpdate", "conditionalDelete",
                    "referencePolicy", "searchInclude", "searchRevInclude", "searchParam", "operation",
                ]))
        }
    }

    @Test func crudVersioningAndConditionalRequests() async throws {
        try await withOrigin { _, client, base in
            let created = try await client.post(base + "/Patient", #"{"resourceType":"Patient","name":[{"family":"Ng"}]}"#)
            #expect(created.status == 201)
            let id = try #require(created.json["id"] as? String)
            #expect(created.header("Location") == "\(base)/Patient/\(id)/_history/1")
            #expect(created.header("ETag") == "W/\"1\"")
            #expect(created.header("Last-Modified")?.hasSuffix("GMT") == true)

            let read = try await client.get("\(base)/Patient/\(id)")
            #expect(read.status == 200 && read.header("ETag") == "W/\"1\"")
            #expect((read.json["meta"] as? [String: Any])?["versionId"] as? String == "1")
            #expect(try await client.get("\(base)/Patient/\(id)", headers: [("If-None-Match", "W/\"1\"")]).status == 304)
            #expect(try await client.get("\(base)/Patient/\(id)", headers: [("If-None-Match", "1")]).status == 304)
            #expect(try await client.get("\(base)/Patient/\(id)", headers: [("If-None-Match", "W/\"9\"")]).status == 200)

            let body = #"{"resourceType":"Patient","id":"\#(id)","active":true}"#
            let updated = try await client.put("\(base)/Patient/\(id)", body, headers: [("If-Match", "W/\"1\"")])
            #expect(updated.status == 200 && updated.header("ETag") == "W/\"2\"")
            let stale = try await client.put("\(base)/Patient/\(id)", body, headers: [("If-Match", "1")])
            #expect(stale.status == 412 && stale.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await client.put("\(base)/Patient/\(id)", body, headers: [("If-Match", "2")]).status == 200)

            let minimal = try await client.put("\(base)/Patient/\(id)", body, headers: [("Prefer", "return=minimal")])
            #expect(minimal.status == 200 && minimal.body.isEmpty && minimal.header("ETag") == "W/\"4\"")

            let asCreate = try await client.put("\(base)/Patient/chosen-1", #"{"resourceType":"Patient"}"#)
            #expect(asCreate.status == 201)

            #expect(try await client.get("\(base)/Patient/\(id)/_history/1").status == 200)
            let history = try await client.get("\(base)/Patient/\(id)/_history")
            #expect(history.json["type"] as? String == "history" && history.json["total"] as? Int == 4)

            let deleted = try await client.delete("\(base)/Patient/\(id)")
            #expect(deleted.status == 204)
            let gone = try await client.get("\(base)/Patient/\(id)")
            #expect(gone.status == 410 && gone.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await client.get("\(base)/Patient/\(id)/_history/2").status == 200)
            #expect(try await client.get("\(base)/Patient/never").status == 404)
            #expect(try await client.get("\(base)/Patient/\(id)?_format=json").status == 410)
            #expect(try await client.get("\(base)/Patient/chosen-1?_format=xml").status == 406)
        }
    }

    @Test func searchWithPagingOnTheNodesOwnBase() async throws {
        try await withOrigin { _, client, base in
            for i in 0..<5 {
                let obs =
                    #"{"resourceType":"Observation","status":"final","code":{"text":"hr"},"identifier":[{"system":"urn:lab","value":"L\#(i)"}],"subject":{"reference":"Patient/p\#(i % 2)"}}"#
                #expect(try await client.put("\(base)/Observation/o\(i)", obs).status == 201)
            }
            var page = try await client.get("\(base)/Observation?patient=p0&_count=2")
            #expect(page.json["total"] as? Int == 3)
            #expect((page.json["entry"] as? [Any])?.count == 2)
            let links = (page.json["link"] as? [[String: String]]) ?? []
            let next = try #require(links.first { $0["relation"] == "next" }?["url"])
            #expect(next.hasPrefix(base + "/Observation?"))
            page = try await client.get(next)
            #expect((page.json["entry"] as? [Any])?.count == 1)
            #expect(((page.json["link"] as? [[String: String]]) ?? []).contains { $0["relation"] == "previous" })

            func count(_ query: String) async throws -> Int? { try await client.get("\(base)/Observation?\(query)").json["total"] as? Int }
            #expect(try await count("identifier=urn:lab%7CL3") == 1)
            #expect(try await count("identifier=L3") == 1)
            #expect(try await count("_id=o1,o2") == 2)
            #expect(try await count("subject=Patient/p1") == 2)
            #expect(try await count("_lastUpdated=gt2000-01-01") == 5)
            #expect(try await count("_lastUpdated=lt2000-01-01") == 0)
            #expect(try await count("") == 5)
            let post = try await client.send(
                .POST, "\(base)/Observation/_search", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "patient=p1")
            #expect(post.json["total"] as? Int == 2)
        }
    }

    @Test func badInputGetsAClearOutcomeAndChangesNothing() async throws {
        try await withOrigin(extra: "limits: { max_body_bytes: 65536, idle_timeout_s: 1 }") { origin, client, base in
            func expectOutcome(
                _ reply: TestClient.Reply, _ status: Int, _ fragment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
            ) {
                #expect(reply.status == status, sourceLocation: sourceLocation)
                #expect(reply.json["resourceType"] as? String == "OperationOutcome", sourceLocation: sourceLocation)
                if let fragment {
                    let diagnostics = ((reply.json["issue"] as? [[String: Any]])?.first?["diagnostics"] as? String) ?? ""
                    #expect(diagnostics.contains(fragment), "\(diagnostics)", sourceLocation: sourceLocation)
                }
            }
            expectOutcome(try await client.post("\(base)/Patient", #"{"resourceType":"Patient","#), 400, "not valid JSON")
            let deep =
                #"{"resourceType":"Patient","extension":"# + String(repeating: "[", count: 65) + String(repeating: "]", count: 65) + "}"
            expectOutcome(try await client.post("\(base)/Patient", deep), 400, "deeper than 64")
            expectOutcome(try await client.post("\(base)/Patient", #"{"resourceType":"Observation"}"#), 400, "does not match")
            expectOutcome(
                try await client.put("\(base)/Patient/p1", #"{"resourceType":"Patient","id":"p2"}"#), 400, "does not match the URL id")
            expectOutcome(try await client.put("\(base)/Patient/a_b", #"{"resourceType":"Patient"}"#), 400, "not a valid FHIR id")
            expectOutcome(try await client.get("\(base)/Patient/" + String(repeating: "x", count: 65)), 400, "not a valid FHIR id")
            expectOutcome(try await client.get("\(base)/NotAType/1"), 404, "Unknown resource type")
            expectOutcome(try await client.post("\(base)/NotAType", #"{"resourceType":"NotAType"}"#), 404)
            expectOutcome(try await client.post("\(base)/Patient", "[]"), 400)
            expectOutcome(
                try await client.post("\(base)/Patient", "<Patient/>", headers: [("Content-Type", "application/fhir+xml")]), 415)
            let big = #"{"resourceType":"Patient","text":""# + String(repeating: "x", count: 70_000) + #""}"#
            expectOutcome(try await client.post("\(base)/Patient", big), 413, "exceeds the limit")
            expectOutcome(try await client.get("\(base)/Patient", headers: [("X-Padding", String(repeating: "y", count: 20_000))]), 431)
            expectOutcome(try await client.get("\(base)/Patient?_count=abc"), 400)
            expectOutcome(try await client.send(.PATCH, "\(base)/Patient/p1"), 405)
            #expect(origin.runtime.originStore?.headLSN == 0)
            // The server is still healthy after all of it.
            #expect(try await client.post("\(base)/Patient", #"{"resourceType":"Patient"}"#).status == 201)
        }
    }

    @Test func slowClientsAreDisconnected() async throws {
        try await withOrigin(extra: "limits: { idle_timeout_s: 1 }") { origin, _, _ in
            let pki = SharedPKI.main
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = [
                "s_client", "-quiet", "-connect", "127.0.0.1:\(origin.port("api"))", "-cert", pki.cert("client-a"), "-key",
                pki.key("client-a"), "-CAfile", pki.ca,
            ]
            let input = Pipe()
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Half a request, then silence: the server must hang up on its own.
            input.fileHandleForWriting.write(Data("GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n".utf8))
            let closed = try await eventually(6) { !process.isRunning }
            if process.isRunning { process.terminate() }
            #expect(closed)
        }
    }
}
