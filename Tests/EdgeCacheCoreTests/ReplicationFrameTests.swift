import EdgeCacheCore
import Testing

@Suite struct ReplicationFrameTests {
    func lines(_ frames: [ReplicationFrame]) -> [[UInt8]] {
        var out: [UInt8] = []
        for frame in frames { frame.encode(into: &out) }
        return out.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
    }

    func decodeAll(_ lines: [[UInt8]]) throws -> [ReplicationFrame] {
        var decoder = FrameDecoder()
        return try lines.compactMap { try decoder.decode(line: $0) }
    }

    @Test func roundTripsEveryFrameKind() throws {
        let patient = ResourceVersion(
            type: "Patient", id: "p1", version: 2, lastUpdated: 1000, deleted: false,
            json: Array(#"{"resourceType":"Patient","id":"p1","note":"line\nbreak"}"#.utf8))
        let tombstone = ResourceVersion(type: "Observation", id: "o1", version: 4, lastUpdated: 2000, deleted: true, json: [])
        let frames: [ReplicationFrame] = [
            .snapshotStart(lsn: 9), .snapshotStart(lsn: 10, total: 2), .change(lsn: 5, patient), .change(lsn: 6, tombstone),
            .heartbeat(head: 10, sent: 6, time: 123), .snapshotEnd(count: 2),
        ]
        #expect(try decodeAll(lines(frames)) == frames)
    }

    @Test func rejectsResourceLineThatDoesNotMatchItsHeader() {
        let header = Array(#"{"k":"c","lsn":1,"type":"Patient","id":"p1","v":1,"ts":0,"del":false}"#.utf8)
        let body = Array(#"{"resourceType":"Patient","id":"other"}"#.utf8)
        #expect(throws: FrameDecodingError.self) { try decodeAll([header, body]) }
    }

    @Test(arguments: [
        #"{"k":"c","lsn":0,"type":"Patient","id":"p1","v":1,"ts":0,"del":true}"#,
        #"{"k":"c","lsn":1,"type":"Nope","id":"p1","v":1,"ts":0,"del":true}"#,
        #"{"k":"c","lsn":1,"type":"Patient","id":"a b","v":1,"ts":0,"del":true}"#,
        #"{"k":"hb","head":"1","sent":1,"time":0}"#, #"{"k":"zz"}"#, "[]", "garbage",
    ])
    func rejectsInvalidHeaders(_ line: String) {
        #expect(throws: FrameDecodingError.self) { try decodeAll([Array(line.utf8)]) }
    }

    @Test func fuzzedLinesNeverTrap() {
        var rng = SeededRandom(seed: 11)
        let valid = lines([.heartbeat(head: 1, sent: 1, time: 1)])[0]
        for _ in 0..<10_000 {
            var line = valid
            for _ in 0..<3 { line[Int(rng.next() % UInt64(line.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            var decoder = FrameDecoder()
            _ = try? decoder.decode(line: line)
        }
    }

    @Test func lineSplitterBoundsLineLength() throws {
        var splitter = LineSplitter(maxLineLength: 8)
        #expect(try splitter.feed(Array("ab\ncd".utf8)) == [Array("ab".utf8)])
        #expect(try splitter.feed(Array("e\n".utf8)) == [Array("cde".utf8)])
        #expect(throws: FrameDecodingError.self) { try splitter.feed(Array("0123456789".utf8)) }
    }
}

@Suite struct StreamCursorTests {
    @Test func connectsFromCheckpointAndResumesAfterFailure() {
        var cursor = StreamCursor(checkpoint: 7)
        #expect(cursor.start() == .connect(since: 7))
        cursor.connected()
        cursor.applied(upTo: 12)
        #expect(cursor.failed(random: 1) == .wait(milliseconds: 100))
        #expect(cursor.retry() == .connect(since: 12))
    }

    @Test func backoffGrowsWithJitterAndIsCapped() {
        var cursor = StreamCursor(checkpoint: 0, baseDelayMilliseconds: 100, maxDelayMilliseconds: 1000)
        _ = cursor.start()
        let delays = (0..<6).map { _ -> Int in
            guard case .wait(let ms) = cursor.failed(random: 1) else { return -1 }
            return ms
        }
        #expect(delays == [100, 200, 400, 800, 1000, 1000])
        guard case .wait(let jittered) = cursor.failed(random: 0) else { Issue.record("no wait"); return }
        #expect(jittered == 500)
        cursor.heartbeat()
        #expect(cursor.failed(random: 1) == .wait(milliseconds: 100))
    }

    @Test func goneLeadsToBootstrapThenStreamingFromSnapshot() {
        var cursor = StreamCursor(checkpoint: 3)
        _ = cursor.start()
        #expect(cursor.gone() == .bootstrap)
        #expect(cursor.state == .bootstrapping)
        #expect(cursor.bootstrapped(at: 500) == .connect(since: 500))
        #expect(cursor.checkpoint == 500)
    }

    @Test func checkpointNeverMovesBackwards() {
        var cursor = StreamCursor(checkpoint: 10)
        cursor.applied(upTo: 5)
        #expect(cursor.checkpoint == 10)
    }
}

@Suite struct LinkStateTests {
    @Test func liveOnlyWithCurrentHeartbeatsAndNothingMissing() {
        var link = LinkState(applied: 5, heartbeatTimeoutMilliseconds: 1000)
        #expect(!link.isLive(at: 0))
        #expect(link.staleness(at: 0) == nil)
        link.heartbeat(head: 8, at: 100)
        #expect(!link.isLive(at: 100))
        link.applied(upTo: 8, at: 150)
        #expect(link.isLive(at: 200))
        #expect(link.staleness(at: 200) == 0)
        // Heartbeats stop: stale, by the time since last caught up.
        #expect(!link.isLive(at: 1300))
        #expect(link.staleness(at: 1300) == 1150)
        link.heartbeat(head: 9, at: 1400)
        #expect(link.staleness(at: 1500) == 1350)
        link.disconnected()
        #expect(!link.isLive(at: 1500))
    }
}

@Suite struct BootstrapProgressTests {
    @Test func reportsShareRateAndTimeLeft() {
        var progress = BootstrapProgress(startedAt: 1000, total: 48_000)
        progress.received = 12_000
        #expect(progress.fraction == 0.25)
        #expect(progress.rate(now: 5000) == 3000)
        #expect(progress.secondsLeft(now: 5000) == 12)
        #expect(progress.describe(now: 5000) == "12,000 of 48,000 resources (25%), 3,000/s, about 12 s left")
    }

    @Test func withoutATotalItCountsOnly() {
        var progress = BootstrapProgress(startedAt: 0, total: nil)
        progress.received = 7
        #expect(progress.fraction == nil && progress.secondsLeft(now: 1000) == nil)
        #expect(progress.describe(now: 50) == "7 resources")
        #expect(BootstrapProgress(startedAt: 0, total: 0).fraction == 1)
    }

    @Test func aNegativeTotalIsRefused() {
        #expect(throws: FrameDecodingError.self) {
            var decoder = FrameDecoder()
            _ = try decoder.decode(line: Array(#"{"k":"snap","lsn":3,"total":-1}"#.utf8))
        }
    }
}
