/// The change stream's wire format (inside a zlib stream, see docs/ARCHITECTURE.md).
///
/// NDJSON. A change is a header line `{"k":"c","lsn":..,"type":..,"id":..,"v":..,"ts":..,"del":false}`
/// followed, unless it is a deletion, by one line holding the resource JSON. A heartbeat is
/// `{"k":"hb","head":..,"sent":..,"time":..,"epoch":".."}`: `head` is the origin's head LSN, `sent` the LSN up to
/// which every change of the tenant has been sent before this line (the edge may checkpoint it),
/// `epoch` the log's ``LogEpoch``. A snapshot starts with `{"k":"snap","lsn":..,"total":..,"epoch":".."}`
/// (`total`: the resources it will hold, for progress), then change frames, and ends with
/// `{"k":"end","count":..}`. `total` and `epoch` are absent from origins older than them.
package enum ReplicationFrame: Sendable, Equatable {
    case change(lsn: Int64, ResourceVersion)
    case heartbeat(head: Int64, sent: Int64, time: Int64, epoch: LogEpoch? = nil)
    case snapshotStart(lsn: Int64, total: Int64? = nil, epoch: LogEpoch? = nil)
    case snapshotEnd(count: Int64)

    /// Appends the frame's lines (each ending in `\n`) to `out`.
    package func encode(into out: inout [UInt8]) {
        switch self {
        case .change(let lsn, let r):
            out.append(contentsOf: Array("{\"k\":\"c\",\"lsn\":\(lsn),\"type\":".utf8))
            JSONValue.writeString(r.type, into: &out)
            out.append(contentsOf: Array(",\"id\":".utf8))
            JSONValue.writeString(r.id, into: &out)
            out.append(contentsOf: Array(",\"v\":\(r.version),\"ts\":\(r.lastUpdated),\"del\":\(r.deleted)}\n".utf8))
            if !r.deleted {
                out.append(contentsOf: r.json)
                out.append(0x0A)
            }
        case .heartbeat(let head, let sent, let time, let epoch):
            let suffix = epoch.map { ",\"epoch\":\"\($0.hex)\"" } ?? ""
            out.append(contentsOf: Array("{\"k\":\"hb\",\"head\":\(head),\"sent\":\(sent),\"time\":\(time)\(suffix)}\n".utf8))
        case .snapshotStart(let lsn, let total, let epoch):
            let suffix = (total.map { ",\"total\":\($0)" } ?? "") + (epoch.map { ",\"epoch\":\"\($0.hex)\"" } ?? "")
            out.append(contentsOf: Array("{\"k\":\"snap\",\"lsn\":\(lsn)\(suffix)}\n".utf8))
        case .snapshotEnd(let count):
            out.append(contentsOf: Array("{\"k\":\"end\",\"count\":\(count)}\n".utf8))
        }
    }
}

/// Why a stream line was refused. The stream is then abandoned and re-opened from the checkpoint.
package struct FrameDecodingError: Error, Sendable, CustomStringConvertible {
    package let message: String
    package init(message: String) { self.message = message }
    package var description: String { "invalid replication frame: \(message)" }
}

/// Turns stream lines back into frames. Validates everything: lines come from the network.
package struct FrameDecoder: Sendable {
    private var pending: (lsn: Int64, header: ResourceVersion)?

    package init() {}

    /// Whether a change header is waiting for its resource line.
    package var expectsResourceLine: Bool { pending != nil }

    /// Feeds one line (without its newline). Returns a frame when one is complete.
    package mutating func decode(line: [UInt8]) throws(FrameDecodingError) -> ReplicationFrame? {
        if let (lsn, header) = pending {
            pending = nil
            guard let value = try? JSONParser.parse(line), case .object(let object) = value,
                object["resourceType"]?.stringValue == header.type, object["id"]?.stringValue == header.id
            else { throw FrameDecodingError(message: "resource line does not match its header") }
            var version = header
            version.json = line
            return .change(lsn: lsn, version)
        }
        guard let value = try? JSONParser.parse(line, maxDepth: 2), case .object(let o) = value,
            let kind = o["k"]?.stringValue
        else { throw FrameDecodingError(message: "not a frame header") }
        func int(_ key: String) throws(FrameDecodingError) -> Int64 {
            guard case .number(let text) = o[key], let n = Int64(text) else {
                throw FrameDecodingError(message: "'\(key)' missing or not an integer")
            }
            return n
        }
        func epoch() throws(FrameDecodingError) -> LogEpoch? {
            guard let value = o["epoch"] else { return nil }
            guard let text = value.stringValue, let epoch = LogEpoch(hex: text) else {
                throw FrameDecodingError(message: "'epoch' is not 16 hex digits")
            }
            return epoch
        }
        switch kind {
        case "hb":
            return .heartbeat(head: try int("head"), sent: try int("sent"), time: try int("time"), epoch: try epoch())
        case "snap":
            let total = o["total"] == nil ? nil : try int("total")
            guard total.map({ $0 >= 0 }) ?? true else { throw FrameDecodingError(message: "'total' is negative") }
            return .snapshotStart(lsn: try int("lsn"), total: total, epoch: try epoch())
        case "end":
            return .snapshotEnd(count: try int("count"))
        case "c":
            let lsn = try int("lsn")
            let version = try int("v")
            let ts = try int("ts")
            guard let type = o["type"]?.stringValue, ResourceTypes.isStorable(type),
                let id = o["id"]?.stringValue, ResourceID.isValid(id), lsn > 0, version > 0,
                case .bool(let deleted) = o["del"]
            else { throw FrameDecodingError(message: "change header has an invalid field") }
            let header = ResourceVersion(type: type, id: id, version: version, lastUpdated: ts, deleted: deleted, json: [])
            if deleted { return .change(lsn: lsn, header) }
            pending = (lsn, header)
            return nil
        default:
            throw FrameDecodingError(message: "unknown frame kind")
        }
    }
}

/// Splits a byte stream into lines, bounding the longest line it will buffer.
package struct LineSplitter: Sendable {
    private var buffer: [UInt8] = []
    package let maxLineLength: Int

    package init(maxLineLength: Int) {
        self.maxLineLength = maxLineLength
    }

    /// Appends bytes and returns the complete lines they finish.
    package mutating func feed(_ bytes: some Collection<UInt8>) throws(FrameDecodingError) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == 0x0A {
                lines.append(buffer)
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.append(byte)
                if buffer.count > maxLineLength { throw FrameDecodingError(message: "line longer than \(maxLineLength)") }
            }
        }
        return lines
    }
}
