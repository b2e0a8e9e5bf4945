import EdgeCacheCore
import EdgeCacheCrypto
import Foundation
import Logging
import Synchronization

/// Structured logs (`log.format: json`): one JSON object per line on standard error, for log
/// shippers. `{"time":"…","level":"warning","label":"edgecache","message":"…","source":"…",
/// "metadata":{…}}`.
///
/// Log lines carry no resource content by design (requests go to the audit trail, not the log),
/// and as a second line of defence this handler never writes the value of a metadata key that
/// could name a patient or a resource (`id`, `patient`, `subject`, `resource`, `reference`,
/// `identifier`, `mrn`, `name`, `key`, `idempotency_key`, `token`, `url`, `path`): it writes
/// `redacted:` and 12 hex digits of an HMAC under a key made at process start, so one run's lines
/// can be correlated but the value cannot be recovered or guessed across runs.
package struct JSONLogHandler: LogHandler {
    package static let sensitiveKeys: Set<String> = [
        "id", "patient", "subject", "resource", "reference", "identifier", "mrn", "name", "key", "idempotency_key", "token",
        "url", "path",
    ]
    static let salt: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }

    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    package var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    package init(label: String, level: Logger.Level, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.write = write
    }

    package static let standardError: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data(line.utf8)) }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The value of a metadata entry as logged.
    static func render(_ key: String, _ value: Logger.Metadata.Value) -> String {
        if sensitiveKeys.contains(key.lowercased()) {
            let mac = HMACSHA256.mac(key: salt, data: Array(value.description.utf8))
            return "redacted:" + Hex.encode(mac.prefix(6))
        }
        return value.description
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var line = "{\"time\":\(Self.quote(time)),\"level\":\(Self.quote(event.level.rawValue)),\"label\":\(Self.quote(label))"
        line += ",\"message\":\(Self.quote(event.message.description)),\"source\":\(Self.quote(event.source))"
        if !merged.isEmpty {
            line +=
                ",\"metadata\":{"
                + merged.sorted { $0.key < $1.key }.map { "\(Self.quote($0.key)):\(Self.quote(Self.render($0.key, $0.value)))" }
                .joined(separator: ",") + "}"
        }
        write(line + "}\n")
    }
}
