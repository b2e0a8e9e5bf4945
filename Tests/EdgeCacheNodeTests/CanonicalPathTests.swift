import EdgeCacheHTTP
import EdgeCacheNode
import EdgeCacheStore
import Foundation
import Testing

/// Every listener routes canonical paths only, and whatever it answers under `/fhir` or
/// `/replication` is in its audit trail: `//fhir/…`, `/./`, `/../`, `%2F` are refused (400),
/// never served unrecorded.
@Suite(.serialized) struct CanonicalPathTests {
    let dir = TempDir()

    @Test func pathsAreClassifiedOnce() {
        #expect(RequestTarget(path: "/fhir/Patient/x") == .fhir(["Patient", "x"]))
        #expect(RequestTarget(path: "/replication/v1/changes") == .replication(["v1", "changes"]))
        #expect(RequestTarget(path: "/healthz") == .other)
        #expect(RequestTarget(path: "/") == .other)
        for path in [
            "//fhir/Patient/x", "/fhir//Patient", "/fhir/Patient/", "/./fhir", "/fhir/../fhir/Patient", "/fhir/Patient/x/..",
            "/%2Ffhir/Patient", "/fhir%2fPatient", "/fhir\\Patient", "fhir/Patient", "", "/fhir/Patient/%2e%2e",
        ] {
            #expect(RequestTarget(path: path) == .nonCanonical, "\(path)")
        }
    }

    /// Non-canonical spellings of a canonical path (its query kept).
    static func variants(_ path: String) -> [String] {
        let (route, query) = path.firstIndex(of: "?").map { (String(path[..<$0]), String(path[$0...])) } ?? (path, "")
        let parts = route.split(separator: "/").map(String.init)
        var out = ["/" + route, route + "/", "/." + route, "/x/.." + route, route + "/.", route + "/..", String(route.dropFirst())]
        for i in 1..<parts.count {
            let head = "/" + parts[..<i].joined(separator: "/")
            let tail = parts[i...].joined(separator: "/")
            out += [head + "//" + tail, head + "/./" + tail, head + "/../" + parts[i - 1] + "/" + tail, head + "%2F" + tail]
        }
        out += [
            "/%2F" + route.dropFirst(), "/%66" + route.dropFirst(2), route.replacingOccurrences(of: "/", with: "%2f"),
            route.replacingOccurrences(of: "/", with: "\\"), "https://evil.example" + route, "https://evil.example/" + route,
        ]
        return [path] + out.map { $0 + query }
    }

    @Test func everyAnsweredRequestOnEveryListenerIsAudited() async throws {
        let pair = PairConfig(dir: dir.path, pki: SharedPKI.main)
        let origin = try await InProcessNode(configPath: try pair.writeOrigin())
        let edge = try await InProcessNode(configPath: try pair.writeEdge(tenant: "a", originPort: origin.port("peer")))
        #expect(try await eventually(10) { edge.runtime.edgeLink?.isLive == true })
        let listeners = [
            ("edge api", edge, RawHTTPS(port: edge.port("api"), pki: SharedPKI.main, identity: "client-a")),
            ("origin api", origin, RawHTTPS(port: origin.port("api"), pki: SharedPKI.main, identity: "client-a")),
            ("origin peer", origin, RawHTTPS(port: origin.port("peer"), pki: SharedPKI.main, identity: "edge-a")),
        ]
        let patient = #"{"resourceType":"Patient","id":"x"}"#
        #expect(try await listeners[1].2.send("PUT", "/fhir/Patient/x", body: patient).status == 201)

        let fhirRoutes: [(String, String, String?)] = [
            ("GET", "/fhir/metadata", nil), ("GET", "/fhir/Patient?_id=x", nil), ("POST", "/fhir/Patient/_search", nil),
            ("GET", "/fhir/Patient/x", nil), ("HEAD", "/fhir/Patient/x", nil), ("GET", "/fhir/Patient/x/_history", nil),
            ("GET", "/fhir/Patient/x/_history/1", nil), ("PUT", "/fhir/Patient/v", #"{"resourceType":"Patient","id":"v"}"#),
            ("POST", "/fhir/Patient", #"{"resourceType":"Patient"}"#), ("DELETE", "/fhir/Patient/w", nil),
        ]
        let replicationRoutes: [(String, String, String?)] = [
            ("GET", "/replication/v1/changes?since=999", nil), ("GET", "/replication/v1/snapshot", nil),
            ("GET", "/replication/v1/policy", nil), ("POST", "/replication/v1/audit-anchor", "{}"),
        ]
        var answered: [(node: ObjectIdentifier, listener: String, request: String, status: Int, id: String?)] = []
        for (name, node, client) in listeners {
            for (method, route, body) in fhirRoutes + (name == "origin peer" ? replicationRoutes : []) {
                for target in Self.variants(route) {
                    let reply = try await client.send(method, target, body: body)
                    // Refused by the HTTP parser before EdgeCache sees it (a bare 400): nothing was answered.
                    if reply.status == 400 && reply.body.isEmpty && reply.header("X-Request-Id") == nil { continue }
                    answered.append((ObjectIdentifier(node), name, "\(method) \(target)", reply.status, reply.header("X-Request-Id")))
                    let isOutcome = reply.json["resourceType"] as? String == "OperationOutcome" || method == "HEAD"
                    if target != route && !target.hasPrefix("https://evil.example/fhir")
                        && !target.hasPrefix("https://evil.example/replication")
                    {
                        #expect(
                            reply.status == 400 && isOutcome, "\(name): \(method) \(target) answered \(reply.status)")
                    }
                }
            }
        }
        // Refused writes changed nothing.
        #expect(try await listeners[1].2.send("GET", "/fhir/Patient/w").status == 404)
        await edge.stop()
        await origin.stop()

        let audited = [
            ObjectIdentifier(edge): Set(try await edge.runtime.auditLog.store.records().map(\.record.requestID)),
            ObjectIdentifier(origin): Set(try await origin.runtime.auditLog.store.records().map(\.record.requestID)),
        ]
        let unaudited = answered.filter { answer in answer.id.map { audited[answer.node]?.contains($0) != true } ?? true }
        #expect(unaudited.isEmpty, "answered but not audited: \(unaudited.map { "\($0.listener): \($0.request) → \($0.status)" })")
        #expect(answered.count > 500)
    }
}
