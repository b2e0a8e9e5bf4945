import EdgeCacheHTTP
import HTTPTypes
import Testing

/// The typed answer (issue 14 item 1): one classification of each path shape, and the header
/// strings rendered from the facts, pinned to what clients and the audit trail have always seen.
@Suite struct FHIRFactsTests {
    func facts(_ method: HTTPRequest.Method, _ path: String) -> FHIRFacts {
        FHIRFacts(method: method, segments: path.split(separator: "/"))
    }

    @Test func everyPathShapeIsOneInteraction() {
        #expect(facts(.get, "metadata") == FHIRFacts(interaction: .capabilities))
        #expect(facts(.post, "metadata") == FHIRFacts(interaction: .other))
        #expect(facts(.get, "Patient") == FHIRFacts(interaction: .search, type: "Patient"))
        #expect(facts(.post, "Patient/_search") == FHIRFacts(interaction: .search, type: "Patient"))
        #expect(facts(.get, "Patient/_search") == FHIRFacts(interaction: .other, type: "Patient"))
        #expect(facts(.post, "Patient") == FHIRFacts(interaction: .create, type: "Patient"))
        #expect(facts(.get, "Patient/p1") == FHIRFacts(interaction: .read, type: "Patient", id: "p1"))
        #expect(facts(.head, "Patient/p1") == FHIRFacts(interaction: .read, type: "Patient", id: "p1"))
        #expect(facts(.put, "Patient/p1") == FHIRFacts(interaction: .update, type: "Patient", id: "p1"))
        #expect(facts(.delete, "Patient/p1") == FHIRFacts(interaction: .delete, type: "Patient", id: "p1"))
        #expect(facts(.patch, "Patient/p1") == FHIRFacts(interaction: .other, type: "Patient", id: "p1"))
        #expect(facts(.get, "Patient/p1/_history") == FHIRFacts(interaction: .history, type: "Patient", id: "p1"))
        #expect(facts(.get, "Patient/p1/_history/2") == FHIRFacts(interaction: .vread, type: "Patient", id: "p1"))
        #expect(facts(.get, "Patient/p1/other") == FHIRFacts(interaction: .other, type: "Patient", id: "p1"))
        var compartment = FHIRFacts(interaction: .search, type: "Observation")
        compartment.compartment = "Patient/p1"
        #expect(facts(.get, "Patient/p1/Observation") == compartment)
        #expect(facts(.get, "Patient/p1/Observation").resource == "Patient/p1/Observation", "the audit trail names the patient")
        #expect(facts(.get, "") == FHIRFacts(interaction: .other))
        #expect(facts(.get, "Patient/p1").resource == "Patient/p1")
        #expect(facts(.get, "Patient").resource == "Patient")
        #expect(facts(.get, "metadata").resource == nil)
    }

    @Test func cacheStatusIsRenderedFromTheFacts() {
        let cases: [(CacheFacts, String, String, Bool)] = [
            (CacheFacts(.hit, ttl: 298, age: 2), "edgecache; hit; ttl=298", "hit", false),
            (
                CacheFacts(.hit, ttl: 290, detail: "origin-unreachable", age: 10), #"edgecache; hit; ttl=290; detail="origin-unreachable""#,
                "stale", false
            ),
            (
                CacheFacts(.hit, ttl: -5, detail: "origin-error", age: 905), #"edgecache; hit; ttl=-5; detail="origin-error""#, "stale",
                false
            ),
            (CacheFacts(.hit, ttl: 0, detail: "catching-up", age: 900), #"edgecache; hit; ttl=0; detail="catching-up""#, "hit", false),
            (CacheFacts(.hit, detail: "version", age: 1000), #"edgecache; hit; detail="version""#, "hit", false),
            (CacheFacts(.pendingWrite, age: 0), #"edgecache; hit; detail="pending-write""#, "pending", false),
            (CacheFacts(.miss(stored: false), age: 0), "edgecache; fwd=miss", "miss", true),
            (CacheFacts(.miss(stored: true), age: 0), "edgecache; fwd=miss; stored", "miss", true),
            (CacheFacts(.uriMiss, age: 0), "edgecache; fwd=uri-miss", "hit", true),
            (
                CacheFacts(.revalidated(originStatus: 304, stored: false), ttl: 900, age: 0),
                "edgecache; fwd=stale; fwd-status=304; ttl=900", "revalidated", true
            ),
            (
                CacheFacts(.revalidated(originStatus: 200, stored: true), age: 0), "edgecache; fwd=stale; fwd-status=200; stored",
                "revalidated", true
            ),
        ]
        for (facts, header, result, askedOrigin) in cases {
            #expect(facts.cacheStatus == header)
            #expect(facts.result == result, "\(header)")
            #expect(facts.askedOrigin == askedOrigin, "\(header)")
        }
    }

    @Test func outboxAndConsentHeaders() {
        #expect(OutboxFacts(.queued, seq: 7).headerValue == "queued; seq=7")
        #expect(OutboxFacts(.review, seq: 8).headerValue == "review; seq=8")
        #expect(ConsentFacts.blocked(consentID: "c1").headerValue == "blocked; consent=Consent/c1")
        #expect(ConsentFacts.breakGlass(consentID: "c1").headerValue == "break-glass; consent=Consent/c1")
        #expect(ConsentFacts.filtered(entries: 2).headerValue == "filtered; entries=2")
        #expect(ConsentFacts.breakGlassEntries(3).headerValue == "break-glass; entries=3")
        #expect(ConsentFacts.blocked(consentID: "c1").isBlocked && !ConsentFacts.blocked(consentID: "c1").isBreakGlass)
        #expect(ConsentFacts.breakGlassEntries(1).isBreakGlass && !ConsentFacts.filtered(entries: 1).isBreakGlass)
    }
}
