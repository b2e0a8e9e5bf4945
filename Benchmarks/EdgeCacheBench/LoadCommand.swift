import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation

/// `edgecache-bench load --db FILE --kek FILE --tenant T --ndjson FILE [--batch N]`
///
/// Writes the resources of an NDJSON file (one FHIR resource with `resourceType` and `id` per
/// line) into an origin database, before the origin starts, through the store's own write path
/// (`SQLiteOriginStore.writeBatch`: sealed, indexed, with history and change-log rows), as
/// updates with a given id. Much faster than one PUT per resource over HTTPS, which the origin
/// commits one transaction at a time. Each write carries an idempotency claim (`load-TYPE-ID`),
/// as `writeBatch` requires one. Used by `tools/bench-reads`.
func runLoad(_ arguments: [String]) async throws -> [String] {
    func value(_ name: String) -> String? {
        guard let index = arguments.firstIndex(of: name), index + 1 < arguments.endIndex else { return nil }
        return arguments[index + 1]
    }
    guard let db = value("--db"), let kekFile = value("--kek"), let tenant = value("--tenant"), let ndjson = value("--ndjson")
    else {
        throw LoadError("usage: edgecache-bench load --db FILE --kek FILE --tenant T --ndjson FILE [--batch N]")
    }
    let batchSize = value("--batch").flatMap(Int.init) ?? 1000
    let store = try SQLiteOriginStore(path: db, kek: try KeyEncryptionKey.load(path: kekFile), clock: SystemWallClock())
    guard let text = FileManager.default.contents(atPath: ndjson) else { throw LoadError("cannot read \(ndjson)") }

    let start = ContinuousClock.now
    var batch: [BatchWrite] = []
    var written = 0
    func flush() async throws {
        guard !batch.isEmpty else { return }
        for (offset, result) in try await store.writeBatch(tenant: tenant, batch).enumerated() {
            if case .failure(let error) = result { throw LoadError("write \(written + offset + 1) failed: \(error)") }
        }
        written += batch.count
        batch.removeAll(keepingCapacity: true)
    }
    for line in text.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
        guard let resource = try JSONParser.parse(Array(line)).objectValue,
            let type = resource["resourceType"]?.stringValue, let id = resource["id"]?.stringValue
        else { throw LoadError("line \(written + batch.count + 1): not a resource with resourceType and id") }
        let operation = WriteOperation.update(type: type, id: id, resource: resource, ifMatch: nil)
        batch.append(
            BatchWrite(operation: operation, claim: IdempotencyClaim(key: "load-\(type)-\(id)", fingerprint: operation.fingerprintBytes)))
        if batch.count == batchSize { try await flush() }
    }
    try await flush()
    let seconds = milliseconds(ContinuousClock.now - start) / 1000
    return [
        "load: \(written) resources in "
            + String(
                format: "%.1f s (%.0f writes/s, batches of %d), head LSN %lld", seconds, Double(written) / seconds, batchSize, store.headLSN
            )
    ]
}

/// A usage or input error of the `load` subcommand.
struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
