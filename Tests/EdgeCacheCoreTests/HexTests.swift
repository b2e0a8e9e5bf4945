import EdgeCacheCore
import Testing

@Suite struct HexTests {
    @Test func roundTripsAndRefusesNonHex() {
        #expect(Hex.encode([0x00, 0xab, 0x0f, 0xff]) == "00ab0fff")
        #expect(Hex.decode("00ab0fff") == [0x00, 0xab, 0x0f, 0xff])
        #expect(Hex.decode("00AB0FFF") == [0x00, 0xab, 0x0f, 0xff])
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("+1") == nil)
        let bytes = (0...255).map { UInt8($0) }
        #expect(Hex.decode(Hex.encode(bytes)) == bytes)
    }
}
