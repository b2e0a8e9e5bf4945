import EdgeCacheCore
import Testing

@Suite struct AuditRecordTests {
    let record = AuditRecord(
        time: 1_700_000_000_000, action: "read", outcome: 200, actor: "client:a:nurse-7", tenant: "a", purpose: "TREAT",
        resource: "Observation/o1", version: 2, source: "origin", policyClass: "clinical", policyVersion: "builtin-1", node: "edge-1",
        requestID: "r1")

    @Test func recordsWithoutBreakGlassEncodeAsBefore() {
        let text = String(decoding: record.canonical(), as: UTF8.self)
        #expect(!text.contains("breakGlass"))
        #expect(text.hasSuffix(#""node":"edge-1","request":"r1"}"#))
        #expect(AuditRecord.decode(record.canonical()) == record)
    }

    @Test func breakGlassIsKeptAndReadBack() {
        var glass = record
        glass.breakGlass = "unconscious patient"
        let text = String(decoding: glass.canonical(), as: UTF8.self)
        #expect(text.hasSuffix(#""request":"r1","breakGlass":"unconscious patient"}"#))
        #expect(AuditRecord.decode(glass.canonical()) == glass)
    }
}
