import EdgeCacheCore
import Testing

/// The origin log's epoch on the wire and what an edge's link and cursor do when it changes.
@Suite struct LogEpochTests {
    @Test func wireFormIsSixteenLowercaseHexDigits() throws {
        let epoch = try #require(LogEpoch(value: 0xab))
        #expect(epoch.hex == "00000000000000ab")
        #expect(LogEpoch(hex: epoch.hex) == epoch)
        #expect(LogEpoch(storedValue: epoch.storedValue) == epoch)
        let high = try #require(LogEpoch(value: .max))
        #expect(LogEpoch(storedValue: high.storedValue) == high, "stored as a negative INTEGER, read back whole")
        for bad in ["", "0000000000000000", "00000000000000AB", "ab", "00000000000000abc", "-000000000000001", "zzzzzzzzzzzzzzzz"] {
            #expect(LogEpoch(hex: bad) == nil, "\(bad)")
        }
        #expect(LogEpoch.random() != LogEpoch.random())
    }

    @Test func framesCarryTheEpochAndOlderFramesWithoutItStillDecode() throws {
        let epoch = LogEpoch.random()
        var out: [UInt8] = []
        ReplicationFrame.heartbeat(head: 7, sent: 7, time: 1, epoch: epoch).encode(into: &out)
        ReplicationFrame.snapshotStart(lsn: 7, total: 3, epoch: epoch).encode(into: &out)
        var decoder = FrameDecoder()
        let lines = out.split(separator: 0x0A).map(Array.init)
        #expect(try decoder.decode(line: lines[0]) == .heartbeat(head: 7, sent: 7, time: 1, epoch: epoch))
        #expect(try decoder.decode(line: lines[1]) == .snapshotStart(lsn: 7, total: 3, epoch: epoch))
        // An origin older than epochs.
        #expect(try decoder.decode(line: Array(#"{"k":"hb","head":1,"sent":1,"time":0}"#.utf8)) == .heartbeat(head: 1, sent: 1, time: 0))
        #expect(throws: FrameDecodingError.self) {
            try decoder.decode(line: Array(#"{"k":"hb","head":1,"sent":1,"time":0,"epoch":7}"#.utf8))
        }
        #expect(throws: FrameDecodingError.self) {
            try decoder.decode(line: Array(#"{"k":"snap","lsn":1,"epoch":"not-hex-at-all!!"}"#.utf8))
        }
    }

    @Test func anEpochChangeForgetsTheOldHeadAndBootstraps() {
        var link = LinkState(applied: 900)
        link.heartbeat(head: 1000, at: 1)
        link.epochChanged()
        #expect(link.originHead == 0 && link.applied == 0 && !link.connected)
        link.applied(upTo: 40, at: 2)
        link.heartbeat(head: 40, at: 2)
        #expect(link.originHead == 40 && link.isLive(at: 2), "the restored origin's head, not the old one")

        var cursor = StreamCursor(checkpoint: 900)
        _ = cursor.start()
        #expect(cursor.epochChanged() == .bootstrap)
        #expect(cursor.bootstrapped(at: 40) == .connect(since: 40))
    }
}
